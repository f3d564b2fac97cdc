// The Apache Kafka Java client on a secured listener: produces records to
// a topic and reads them back, with the client security settings from a
// properties file (SSL, SASL_PLAINTEXT, SASL_SSL, as Kafka's clients take
// them). With a pause, the records are sent that many ms apart, so a
// session shorter than the run is re-authenticated (KIP-368) on the way.
// Usage: SecureClientCheck BOOTSTRAP TOPIC PROPS_FILE [PAUSE_MS | expect-auth-failure | expect-authz-failure]
// Prints OK, AUTH-FAILED when the broker refused the login, or
// AUTHZ-FAILED: produce|consume when an ACL refused the writes or the reads.
import java.io.FileReader;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.errors.AuthenticationException;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class SecureClientCheck {
    static boolean isA(Throwable t, Class<?> kind) {
        for (; t != null; t = t.getCause()) {
            if (kind.isInstance(t)) {
                return true;
            }
        }
        return false;
    }

    public static void main(String[] args) throws Exception {
        Properties security = new Properties();
        security.put("bootstrap.servers", args[0]);
        try (FileReader in = new FileReader(args[2])) {
            security.load(in);
        }
        boolean expectFailure = args.length > 3 && args[3].equals("expect-auth-failure");
        boolean expectDenial = args.length > 3 && args[3].equals("expect-authz-failure");
        long pause = args.length > 3 && !expectFailure && !expectDenial ? Long.parseLong(args[3]) : 0;
        Properties p = new Properties();
        p.putAll(security);
        p.put("acks", "all");
        p.put("max.block.ms", "20000");
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            for (int i = 0; i < 10; i++) {
                producer.send(new ProducerRecord<>(args[1], "k" + i, "java" + i)).get();
                Thread.sleep(pause);
            }
        } catch (Exception e) {
            if (expectFailure && isA(e, AuthenticationException.class)) {
                System.out.println("AUTH-FAILED: " + e);
                return;
            }
            if (expectDenial && isA(e, AuthorizationException.class)) {
                System.out.println("AUTHZ-FAILED: produce: " + e);
                return;
            }
            throw e;
        }
        if (expectFailure) {
            System.out.println("FAILED: the login was accepted");
            System.exit(1);
        }
        Properties c = new Properties();
        c.putAll(security);
        c.put("group.id", "secure-check-" + System.nanoTime());
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
        } catch (Exception e) {
            if (expectDenial && isA(e, AuthorizationException.class)) {
                System.out.println("AUTHZ-FAILED: consume: " + e);
                return;
            }
            throw e;
        }
        if (seen.size() != 10) {
            System.out.println("FAILED: read " + seen);
            System.exit(1);
        }
        System.out.println("OK");
    }
}
