"""Run by test_kafka_python2.py with an interpreter that has kafka-python 2.x:
topic creation, keyed produce with acks=all, a group consumer, commit, and
the admin listing of groups and committed offsets. Prints one JSON line."""

import json
import sys

import kafka
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

bootstrap, topic, group = sys.argv[1:4]
admin = KafkaAdminClient(bootstrap_servers=bootstrap)
admin.create_topics([NewTopic(topic, 3, 1)])
producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="gzip")
futures = [producer.send(topic, key=b"k%d" % (i % 10), value=b"v%d" % i) for i in range(100)]
producer.flush()
acked = [(f.get(10).partition, f.get(10).offset) for f in futures]
consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                         auto_offset_reset="earliest", enable_auto_commit=False,
                         consumer_timeout_ms=15000)
values = []
for message in consumer:
    values.append(message.value.decode())
    if len(values) == 100:
        break
consumer.commit()
offsets = {tp.partition: o.offset for tp, o in admin.list_consumer_group_offsets(group).items()}
groups = [g[0] for g in admin.list_consumer_groups()]
consumer.close()
print(json.dumps({"version": kafka.__version__, "acked": acked, "values": values,
                  "offsets": offsets, "groups": groups}))
