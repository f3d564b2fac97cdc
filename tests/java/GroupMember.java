// One consumer-group member of the Apache Kafka Java client, as its own
// process, speaking the same JSON-line events as tests/python/group_member.py
// (see there): assigned / revoked / lost from the rebalance listener,
// record before each commit, closed after close(). SIGTERM closes the
// consumer (leaving the group); the clock is System.nanoTime(), Linux's
// CLOCK_MONOTONIC, which Python's time.monotonic() reads too.
//
// usage: java -cp kafka-clients.jar:slf4j-api.jar:slf4j-nop.jar \
//          GroupMember.java BOOTSTRAP GROUP TOPIC NAME [PROTOCOL]

import java.time.Duration;
import java.util.*;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class GroupMember {
    static synchronized void emit(String ev, String fields) {
        double t = System.nanoTime() / 1e9;
        System.out.println("{\"ev\": \"" + ev + "\", \"t\": " + t + (fields.isEmpty() ? "" : ", " + fields) + "}");
        System.out.flush();
    }

    static String partitions(Collection<TopicPartition> ps) {
        return "\"partitions\": " + ps.stream().map(TopicPartition::partition).sorted()
            .map(String::valueOf).collect(Collectors.joining(", ", "[", "]"));
    }

    public static void main(String[] args) throws Exception {
        String protocol = args.length > 4 ? args[4] : "consumer";
        Properties p = new Properties();
        p.put("bootstrap.servers", args[0]);
        p.put("group.id", args[1]);
        p.put("client.id", args[3]);
        p.put("group.protocol", protocol);
        p.put("enable.auto.commit", "false");
        p.put("auto.offset.reset", "earliest");
        p.put("fetch.max.wait.ms", "100");
        // One record per poll, so a refused commit can seek back to it alone.
        p.put("max.poll.records", "1");
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p);
        Thread main = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            consumer.wakeup();
            try { main.join(45000); } catch (InterruptedException e) { }
        }));
        consumer.subscribe(List.of(args[2]), new ConsumerRebalanceListener() {
            public void onPartitionsAssigned(Collection<TopicPartition> ps) { emit("assigned", partitions(ps)); }
            public void onPartitionsRevoked(Collection<TopicPartition> ps) { emit("revoked", partitions(ps)); }
            public void onPartitionsLost(Collection<TopicPartition> ps) { emit("lost", partitions(ps)); }
        });
        try {
            while (true) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(100))) {
                    TopicPartition tp = new TopicPartition(r.topic(), r.partition());
                    emit("record", "\"partition\": " + r.partition() + ", \"offset\": " + r.offset());
                    try {
                        consumer.commitSync(Map.of(tp, new OffsetAndMetadata(r.offset() + 1)));
                    } catch (WakeupException e) {
                        throw e;
                    } catch (KafkaException e) {
                        // Refused (the partition is moving): read it again if it
                        // stays here, else its next owner reads it from the
                        // last commit.
                        emit("commit_failed", "\"partition\": " + r.partition() + ", \"offset\": " + r.offset());
                        try { consumer.seek(tp, r.offset()); } catch (IllegalStateException gone) { }
                    }
                }
            }
        } catch (WakeupException e) {
            // SIGTERM: fall through to close, which leaves the group.
        }
        consumer.close();
        emit("closed", "");
    }
}
