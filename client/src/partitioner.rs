//! Java's default partitioning, so keyed records land on the same partition
//! whichever client (Java, librdkafka in "murmur2_random" mode, Weir) wrote
//! them.

/// Kafka's murmur2 (the 32-bit MurmurHash2 variant with seed 0x9747b28c that
/// `org.apache.kafka.common.utils.Utils.murmur2` implements).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        h ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        h ^= tail[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Java's default partitioner picks for a keyed record.
pub fn partition_for_key(key: &[u8], num_partitions: i32) -> i32 {
    if num_partitions <= 0 {
        return 0;
    }
    (murmur2(key) & 0x7fff_ffff) % num_partitions
}

/// Keyless records stick to one partition until a batch for it is sent, so
/// batches fill up instead of spreading one record per partition (KIP-480).
#[derive(Debug, Default)]
pub struct StickyPartitioner {
    current: std::collections::HashMap<String, i32>,
}

impl StickyPartitioner {
    pub fn partition(&mut self, topic: &str, num_partitions: i32) -> i32 {
        if let Some(p) = self.current.get(topic).filter(|p| **p < num_partitions) {
            return *p;
        }
        let p = if num_partitions <= 1 {
            0
        } else {
            rand::random_range(0..num_partitions)
        };
        self.current.insert(topic.to_string(), p);
        p
    }

    /// A batch for `partition` left: move on to a different partition.
    pub fn on_batch_sent(&mut self, topic: &str, partition: i32, num_partitions: i32) {
        if self.current.get(topic) != Some(&partition) {
            return;
        }
        let next = if num_partitions <= 1 {
            0
        } else {
            // A random *other* partition.
            let r = rand::random_range(0..num_partitions - 1);
            if r >= partition { r + 1 } else { r }
        };
        self.current.insert(topic.to_string(), next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_java() {
        // Kafka's UtilsTest.testMurmur2 vectors.
        let cases: &[(&str, i32)] = &[
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            ("abc", 479470107),
            // Further values published from Java's implementation.
            ("1", -1993445489),
            ("12", 126087238),
            ("123", -267702483),
            ("1234", -1614185708),
            ("12345", -1188365604),
        ];
        for (input, want) in cases {
            assert_eq!(murmur2(input.as_bytes()), *want, "murmur2({input:?})");
        }
    }

    #[test]
    fn keyed_partition_is_positive_and_stable() {
        // toPositive(-973932308) % 10 in Java.
        assert_eq!(
            partition_for_key(b"21", 10),
            ((-973932308i32) & 0x7fffffff) % 10
        );
        for n in 1..50 {
            let p = partition_for_key(b"some key", n);
            assert!((0..n).contains(&p));
        }
        assert_eq!(partition_for_key(b"x", 0), 0);
    }

    #[test]
    fn sticky_stays_until_batch_sent_then_moves() {
        let mut s = StickyPartitioner::default();
        let first = s.partition("t", 6);
        for _ in 0..100 {
            assert_eq!(s.partition("t", 6), first);
        }
        s.on_batch_sent("t", first, 6);
        let second = s.partition("t", 6);
        assert_ne!(first, second);
        // A batch of another partition does not move us.
        s.on_batch_sent("t", (second + 1) % 6, 6);
        assert_eq!(s.partition("t", 6), second);
        assert_eq!(s.partition("one", 1), 0);
    }
}
