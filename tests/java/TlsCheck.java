// The Apache Kafka Java client over TLS: produces records to a topic
// through an SSL listener, trusting the test CA (a PEM truststore), and
// reads them back. Usage: TlsCheck BOOTSTRAP TOPIC CA_PEM
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class TlsCheck {
    public static void main(String[] args) throws Exception {
        Properties tls = new Properties();
        tls.put("bootstrap.servers", args[0]);
        tls.put("security.protocol", "SSL");
        tls.put("ssl.truststore.type", "PEM");
        tls.put("ssl.truststore.location", args[2]);
        Properties p = new Properties();
        p.putAll(tls);
        p.put("acks", "all");
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            for (int i = 0; i < 10; i++) {
                producer.send(new ProducerRecord<>(args[1], "k" + i, "java" + i)).get();
            }
        }
        Properties c = new Properties();
        c.putAll(tls);
        c.put("group.id", "tls-check-" + System.nanoTime());
        c.put("auto.offset.reset", "earliest");
        c.put("key.deserializer", StringDeserializer.class.getName());
        c.put("value.deserializer", StringDeserializer.class.getName());
        Set<String> seen = new HashSet<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
            consumer.subscribe(List.of(args[1]));
            long deadline = System.currentTimeMillis() + 60_000;
            while (seen.size() < 10 && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    seen.add(r.value());
                }
            }
        }
        if (seen.size() != 10) {
            System.out.println("FAILED: read " + seen);
            System.exit(1);
        }
        System.out.println("OK");
    }
}
