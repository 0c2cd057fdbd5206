package io.connectd.bench;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.EmitStrategy;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindowedKStream;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The Kafka Streams peer of connectd's windowed benchmark (issue 15): the
 * same work as a connectd connector whose last transform is
 * {@code type: window} with {@code window: {type: tumbling, size: 1m}},
 * {@code aggregate: {n: count(), total: sum(value.amount)}}, emit final,
 * no out-of-orderness and no allowed lateness, exactly_once into Kafka.
 *
 * <p>Records are grouped by their key into 1-minute tumbling windows of
 * event time, the record timestamp (Streams' default extractor; connectd's
 * stage without {@code time:}), with grace 0. A window's one final result
 * is written when stream time (the highest timestamp its task has seen,
 * per input partition, as connectd's watermark) reaches the window end:
 * {@code suppress(untilWindowCloses)} by default, or the windowed
 * aggregation's own {@code emitStrategy(onWindowClose)} (KIP-825). The
 * result's key is the grouping key and its value the JSON connectd writes:
 * {@code {"key","window_start","window_end","n","total"}} (RFC 3339, UTC,
 * milliseconds), so the harness reads both outputs with one parser.
 *
 * <p>Settings (printed at start), chosen as the Streams and producer
 * documentation advise for throughput on this machine, and to give Streams'
 * producer the batching and compression connectd's franz-go producer has:
 * processing.guarantee=exactly_once_v2, commit.interval.ms as given (100 in
 * the benchmark), num.stream.threads = available cores, producer
 * compression.type=snappy, batch.size=1000000 and linger.ms=10 (franz-go's
 * defaults are snappy and 1 MB batches; Streams' own linger default is
 * 100 ms, which the commit interval flushes anyway), RocksDB window store
 * with Streams' default 10 MB record cache. Everything else is the default.
 *
 * <p>Usage: StreamsWindow BROKERS INPUT OUTPUT APPLICATION_ID COMMIT_MS THREADS STATE_DIR [suppress|onclose]
 * (THREADS 0: one per available core). Runs until SIGTERM.
 */
public final class StreamsWindow {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final DateTimeFormatter RFC3339_MS =
            DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSSXXX").withZone(ZoneOffset.UTC);

    private StreamsWindow() {
    }

    public static void main(String[] args) throws InterruptedException {
        if (args.length < 7) {
            System.err.println("usage: StreamsWindow BROKERS INPUT OUTPUT APPLICATION_ID COMMIT_MS THREADS STATE_DIR [suppress|onclose]");
            System.exit(2);
        }
        int threads = Integer.parseInt(args[5]);
        if (threads <= 0) {
            threads = Runtime.getRuntime().availableProcessors();
        }
        String emit = args.length > 7 ? args[7] : "suppress";
        if (!emit.equals("suppress") && !emit.equals("onclose")) {
            System.err.println("emit mode must be suppress or onclose, got " + emit);
            System.exit(2);
        }
        Properties props = new Properties();
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[3]);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Long.parseLong(args[4]));
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
        props.put(StreamsConfig.STATE_DIR_CONFIG, args[6]);
        // A single broker: the changelog topics cannot have more replicas.
        props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        props.put(StreamsConfig.producerPrefix(ProducerConfig.COMPRESSION_TYPE_CONFIG), "snappy");
        props.put(StreamsConfig.producerPrefix(ProducerConfig.BATCH_SIZE_CONFIG), 1_000_000);
        props.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), 10);
        // Variants for experiments, e.g. BENCH_STREAMS_PROPS='statestore.cache.max.bytes=0;linger.ms=100'.
        String extra = System.getenv("BENCH_STREAMS_PROPS");
        if (extra != null && !extra.isBlank()) {
            for (String kv : extra.split(";")) {
                String[] p = kv.split("=", 2);
                props.put(p[0].trim(), p[1].trim());
            }
            System.out.println("StreamsWindow: extra properties " + extra);
        }
        System.out.printf("StreamsWindow: %d stream threads, emit %s, commit.interval.ms %s, producer snappy/batch.size 1000000/linger.ms 10, state.dir %s%n",
                threads, emit, args[4], args[6]);

        StreamsBuilder builder = new StreamsBuilder();
        TimeWindowedKStream<String, Double> windowed = builder
                .stream(args[1], Consumed.with(Serdes.String(), Serdes.ByteArray()))
                .mapValues(StreamsWindow::amount)
                // The key is unchanged: no repartition topic, each input
                // partition's keys stay in its task.
                .groupByKey(Grouped.with(Serdes.String(), Serdes.Double()))
                .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMinutes(1), Duration.ZERO));
        if (emit.equals("onclose")) {
            windowed = windowed.emitStrategy(EmitStrategy.onWindowClose());
        }
        KTable<Windowed<String>, CountSum> table = windowed.aggregate(
                () -> CountSum.ZERO,
                (key, amount, agg) -> new CountSum(agg.count + 1, agg.sum + amount),
                Materialized.<String, CountSum, WindowStore<Bytes, byte[]>>with(Serdes.String(), new CountSumSerde()));
        if (emit.equals("suppress")) {
            table = table.suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()));
        }
        table.toStream()
                .map((wk, agg) -> KeyValue.pair(wk.key(), result(wk, agg)))
                .to(args[2], Produced.with(Serdes.String(), Serdes.String()));

        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(10));
            stopped.countDown();
        }));
        streams.setUncaughtExceptionHandler(e -> {
            System.err.println("stream thread failed: " + e);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.start();
        Thread stats = new Thread(() -> logStats(streams), "bench-stats");
        stats.setDaemon(true);
        stats.start();
        stopped.await();
    }

    /**
     * Every 5 s, the stream threads' commit and processing metrics, summed
     * over threads (latencies: the largest), so a run's log shows where the
     * time went: how often Streams committed, how long a commit took, and
     * the share of the loop spent polling, processing and committing.
     */
    private static void logStats(KafkaStreams streams) {
        String[] names = {"commit-total", "commit-latency-avg", "commit-latency-max", "process-total",
            "poll-ratio", "process-ratio", "commit-ratio", "punctuate-ratio"};
        while (true) {
            try {
                Thread.sleep(5000);
            } catch (InterruptedException e) {
                return;
            }
            java.util.Map<String, Double> sum = new java.util.TreeMap<>();
            streams.metrics().forEach((name, metric) -> {
                if (!name.group().equals("stream-thread-metrics")) {
                    return;
                }
                for (String n : names) {
                    if (name.name().equals(n) && metric.metricValue() instanceof Double v && !v.isNaN()) {
                        boolean peak = n.endsWith("-avg") || n.endsWith("-max");
                        sum.merge(n, v, peak ? Math::max : Double::sum);
                    }
                }
            });
            System.out.println("stats " + System.currentTimeMillis() + " " + sum);
        }
    }

    /** The value's "amount" field, parsed as a JSON serde would. */
    private static Double amount(byte[] value) {
        try {
            JsonNode n = JSON.readTree(value);
            return n.path("amount").asDouble();
        } catch (IOException e) {
            throw new IllegalArgumentException("value is not JSON", e);
        }
    }

    /** The JSON connectd's window stage writes for one window. */
    private static String result(Windowed<String> wk, CountSum agg) {
        StringBuilder b = new StringBuilder(128);
        try {
            b.append("{\"key\":").append(JSON.writeValueAsString(wk.key()));
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        b.append(",\"window_start\":\"").append(RFC3339_MS.format(Instant.ofEpochMilli(wk.window().start())));
        b.append("\",\"window_end\":\"").append(RFC3339_MS.format(Instant.ofEpochMilli(wk.window().end())));
        b.append("\",\"n\":").append(agg.count).append(",\"total\":");
        // connectd sums in float64 and prints integers without a fraction.
        if (agg.sum == Math.rint(agg.sum) && Math.abs(agg.sum) < 1e15) {
            b.append((long) agg.sum);
        } else {
            b.append(agg.sum);
        }
        return b.append('}').toString();
    }

    /** A window's aggregate: record count and sum of amounts. */
    static final class CountSum {
        static final CountSum ZERO = new CountSum(0, 0);
        final long count;
        final double sum;

        CountSum(long count, double sum) {
            this.count = count;
            this.sum = sum;
        }
    }

    /** 16 bytes: count, then the sum's IEEE 754 bits. */
    static final class CountSumSerde implements Serde<CountSum> {
        @Override
        public Serializer<CountSum> serializer() {
            return (topic, v) -> v == null ? null : ByteBuffer.allocate(16).putLong(v.count).putDouble(v.sum).array();
        }

        @Override
        public Deserializer<CountSum> deserializer() {
            return (topic, b) -> {
                if (b == null) {
                    return null;
                }
                ByteBuffer buf = ByteBuffer.wrap(b);
                return new CountSum(buf.getLong(), buf.getDouble());
            };
        }
    }
}
