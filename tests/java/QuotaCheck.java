// Client quotas through the Apache Kafka Java client (kafka-clients), run by
// tests/python/test_quota.py as a single-file program:
//
//   java -cp CLASSPATH QuotaCheck.java BOOTSTRAP admin
//     alters quotas with Admin.alterClientQuotas, describes them back with
//     describeClientQuotas, and prints one line per described entity and
//     one per refused alteration.
//   java -cp CLASSPATH QuotaCheck.java BOOTSTRAP produce TOPIC CLIENT_ID BYTES
//     produces BYTES in 1 KiB records as client CLIENT_ID and prints the
//     producer's largest throttle time ("throttle-max-ms N").

import java.util.*;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.quota.*;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class QuotaCheck {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        if (args[1].equals("admin")) {
            admin(bootstrap);
        } else {
            produce(bootstrap, args[2], args[3], Long.parseLong(args[4]));
        }
    }

    static ClientQuotaEntity entity(String... typeThenName) {
        Map<String, String> parts = new HashMap<>();
        for (int i = 0; i < typeThenName.length; i += 2) {
            parts.put(typeThenName[i], typeThenName[i + 1]);
        }
        return new ClientQuotaEntity(parts);
    }

    static void admin(String bootstrap) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(p)) {
            ClientQuotaEntity aliceApp = entity(ClientQuotaEntity.USER, "alice", ClientQuotaEntity.CLIENT_ID, "app");
            ClientQuotaEntity defaultClient = entity(ClientQuotaEntity.CLIENT_ID, null);
            ClientQuotaEntity bad = entity(ClientQuotaEntity.USER, "bob");
            List<ClientQuotaAlteration> changes = List.of(
                new ClientQuotaAlteration(aliceApp, List.of(
                    new ClientQuotaAlteration.Op("producer_byte_rate", 1048576.0),
                    new ClientQuotaAlteration.Op("request_percentage", 25.5))),
                new ClientQuotaAlteration(defaultClient, List.of(
                    new ClientQuotaAlteration.Op("consumer_byte_rate", 2048.0))),
                new ClientQuotaAlteration(bad, List.of(
                    new ClientQuotaAlteration.Op("producer_byte_rate", 1.5))));
            AlterClientQuotasResult result = admin.alterClientQuotas(changes);
            for (Map.Entry<ClientQuotaEntity, org.apache.kafka.common.KafkaFuture<Void>> e : result.values().entrySet()) {
                try {
                    e.getValue().get();
                } catch (ExecutionException ex) {
                    System.out.println("refused " + e.getKey().entries() + " " + ex.getCause().getClass().getSimpleName());
                }
            }
            describe(admin, "all", ClientQuotaFilter.all());
            describe(admin, "alice", ClientQuotaFilter.contains(List.of(
                ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.USER, "alice"))));
            describe(admin, "default-client", ClientQuotaFilter.containsOnly(List.of(
                ClientQuotaFilterComponent.ofDefaultEntity(ClientQuotaEntity.CLIENT_ID))));
            // Remove one of alice's quotas; the other stays.
            admin.alterClientQuotas(List.of(new ClientQuotaAlteration(aliceApp, List.of(
                new ClientQuotaAlteration.Op("request_percentage", null))))).all().get();
            describe(admin, "after-remove", ClientQuotaFilter.contains(List.of(
                ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.USER, "alice"))));
        }
    }

    static void describe(Admin admin, String label, ClientQuotaFilter filter) throws Exception {
        Map<ClientQuotaEntity, Map<String, Double>> described = admin.describeClientQuotas(filter).entities().get();
        List<String> lines = new ArrayList<>();
        for (Map.Entry<ClientQuotaEntity, Map<String, Double>> e : described.entrySet()) {
            lines.add(label + " " + new TreeMap<>(e.getKey().entries()) + " " + new TreeMap<>(e.getValue()));
        }
        if (lines.isEmpty()) {
            lines.add(label + " none");
        }
        Collections.sort(lines);
        lines.forEach(System.out::println);
    }

    static void produce(String bootstrap, String topic, String clientId, long bytes) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("client.id", clientId);
        p.put("acks", "1");
        p.put("linger.ms", "5");
        p.put("key.serializer", ByteArraySerializer.class.getName());
        p.put("value.serializer", ByteArraySerializer.class.getName());
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            byte[] value = new byte[1024];
            List<java.util.concurrent.Future<RecordMetadata>> sent = new ArrayList<>();
            for (long n = 0; n < bytes; n += value.length) {
                sent.add(producer.send(new ProducerRecord<>(topic, value)));
            }
            for (java.util.concurrent.Future<RecordMetadata> f : sent) {
                f.get();
            }
            double max = 0;
            for (Map.Entry<MetricName, ? extends Metric> m : producer.metrics().entrySet()) {
                if (m.getKey().name().equals("produce-throttle-time-max")) {
                    Object v = m.getValue().metricValue();
                    if (v instanceof Double && !((Double) v).isNaN()) {
                        max = Math.max(max, (Double) v);
                    }
                }
            }
            System.out.println("throttle-max-ms " + (long) max);
        }
    }
}
