// The Apache Kafka Java client's transactions against a Weir broker: a
// committed transaction over two partitions, an aborted one, a
// read_committed consumer that sees exactly the committed records (and a
// read_uncommitted one that sees all), offsets sent in a transaction, and a
// second producer with the same transactional.id fencing the first.
//
// usage: java -cp kafka-clients.jar:slf4j-api.jar:slf4j-nop.jar \
//          TransactionsCheck.java BOOTSTRAP TOPIC
// Exits 0 when every check holds; prints what differs otherwise.

import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.serialization.*;

public class TransactionsCheck {
    static String bootstrap;

    static KafkaProducer<String, String> producer(String txnId) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("transactional.id", txnId);
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        p.put("max.block.ms", "30000");
        KafkaProducer<String, String> producer = new KafkaProducer<>(p);
        producer.initTransactions();
        return producer;
    }

    static List<String> read(String topic, String isolation, int want) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("isolation.level", isolation);
        p.put("key.deserializer", StringDeserializer.class.getName());
        p.put("value.deserializer", StringDeserializer.class.getName());
        List<String> out = new ArrayList<>();
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            List<TopicPartition> tps = List.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1));
            c.assign(tps);
            c.seekToBeginning(tps);
            long deadline = System.currentTimeMillis() + 20000;
            long quietSince = System.currentTimeMillis();
            while (System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> records = c.poll(Duration.ofMillis(200));
                if (!records.isEmpty()) {
                    quietSince = System.currentTimeMillis();
                    for (ConsumerRecord<String, String> r : records) out.add(r.value());
                } else if (out.size() >= want && System.currentTimeMillis() - quietSince > 1500) {
                    break;
                }
            }
        }
        Collections.sort(out);
        return out;
    }

    static int failures = 0;

    static void check(boolean ok, String what) {
        if (!ok) {
            failures++;
            System.out.println("FAILED: " + what);
        } else {
            System.out.println("ok: " + what);
        }
    }

    public static void main(String[] args) throws Exception {
        bootstrap = args[0];
        String topic = args[1];
        String txnId = "java-" + topic;
        KafkaProducer<String, String> first = producer(txnId);
        first.beginTransaction();
        List<String> committed = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            first.send(new ProducerRecord<>(topic, i % 2, null, "c" + i));
            committed.add("c" + i);
        }
        first.commitTransaction();
        first.beginTransaction();
        for (int i = 0; i < 4; i++) first.send(new ProducerRecord<>(topic, i % 2, null, "a" + i));
        first.flush();
        first.abortTransaction();
        Collections.sort(committed);
        check(read(topic, "read_committed", 10).equals(committed), "read_committed sees exactly the committed records");
        check(read(topic, "read_uncommitted", 14).size() == 14, "read_uncommitted sees aborted records too");

        String group = "java-group-" + topic;
        first.beginTransaction();
        first.send(new ProducerRecord<>(topic, 0, null, "c-offsets"));
        first.sendOffsetsToTransaction(
            Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(3)),
            new ConsumerGroupMetadata(group));
        first.commitTransaction();
        Properties cp = new Properties();
        cp.put("bootstrap.servers", bootstrap);
        cp.put("group.id", group);
        cp.put("key.deserializer", StringDeserializer.class.getName());
        cp.put("value.deserializer", StringDeserializer.class.getName());
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(cp)) {
            OffsetAndMetadata om = c.committed(Set.of(new TopicPartition(topic, 0))).get(new TopicPartition(topic, 0));
            check(om != null && om.offset() == 3, "offsets sent in the transaction are committed with it (" + om + ")");
        }

        KafkaProducer<String, String> second = producer(txnId);
        boolean fenced = false;
        try {
            first.beginTransaction();
            first.send(new ProducerRecord<>(topic, 0, null, "zombie"));
            first.commitTransaction();
        } catch (ProducerFencedException | InvalidProducerEpochException e) {
            fenced = true;
        } catch (KafkaException e) {
            fenced = e.getCause() instanceof ProducerFencedException
                || e.getCause() instanceof InvalidProducerEpochException;
            if (!fenced) System.out.println("unexpected: " + e);
        }
        check(fenced, "a second producer with the same transactional.id fences the first");
        second.beginTransaction();
        second.send(new ProducerRecord<>(topic, 1, null, "c-live"));
        second.commitTransaction();
        List<String> seen = read(topic, "read_committed", 12);
        check(seen.size() == 12 && seen.contains("c-live") && !seen.contains("zombie"),
              "the new instance commits, the zombie's record never shows: " + seen);
        try { first.close(Duration.ofSeconds(5)); } catch (Exception e) { }
        second.close(Duration.ofSeconds(5));
        System.exit(failures == 0 ? 0 : 1);
    }
}
