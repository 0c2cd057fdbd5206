package io.connectd.bench;

import java.time.Duration;
import java.util.Arrays;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;

/**
 * The Kafka Streams peer of connectd's benchmark: copies every record of the
 * input topic to the output topic with processing.guarantee=exactly_once_v2
 * (one transactional producer per stream thread; the consumed offsets commit
 * in the same transaction every commit.interval.ms). Runs until SIGTERM.
 *
 * <p>Two setups (printed at start):
 * <ul>
 * <li>{@code tuned} (the peer the benchmark's targets compare with), as the
 * Streams and producer documentation advise for throughput, and with the
 * batching and compression every other Kafka writer of the benchmark has
 * (franz-go's defaults, which connectd and the bare loop use: snappy,
 * 1,000,012-byte batches, 10 ms linger): num.stream.threads = THREADS (0:
 * one per available core), producer compression.type=snappy,
 * batch.size=1000000, linger.ms=10 (Streams' own default is 100 ms; the
 * commit interval flushes the producer anyway).
 * <li>{@code defaults}: Kafka Streams' defaults, as a user would start: one
 * stream thread unless THREADS says otherwise, no compression, 16 KB
 * batches, Streams' linger.ms 100.
 * </ul>
 * Both: processing.guarantee=exactly_once_v2, commit.interval.ms as given,
 * auto.offset.reset=earliest; everything else is the default.
 * BENCH_STREAMS_PROPS adds properties for experiments, e.g.
 * {@code 'producer.linger.ms=5;max.poll.records=5000'}.
 *
 * <p>Usage: StreamsCopy BROKERS INPUT[,INPUT...] OUTPUT APPLICATION_ID COMMIT_MS [THREADS [tuned|defaults]]
 * (THREADS 0: one per available core; the default setup is defaults, with
 * one thread).
 */
public final class StreamsCopy {
    private StreamsCopy() {
    }

    public static void main(String[] args) throws InterruptedException {
        if (args.length < 5) {
            System.err.println("usage: StreamsCopy BROKERS INPUT OUTPUT APPLICATION_ID COMMIT_MS [THREADS [tuned|defaults]]");
            System.exit(2);
        }
        int threads = args.length > 5 ? Integer.parseInt(args[5]) : 1;
        if (threads <= 0) {
            threads = Runtime.getRuntime().availableProcessors();
        }
        String setup = args.length > 6 ? args[6] : "defaults";
        if (!setup.equals("tuned") && !setup.equals("defaults")) {
            System.err.println("setup must be tuned or defaults, got " + setup);
            System.exit(2);
        }
        Properties props = new Properties();
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[3]);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Long.parseLong(args[4]));
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
        // A single broker: Streams' internal topics (none for this
        // stateless topology) could not have more replicas.
        props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        String producer = "defaults (compression none, batch.size 16384, linger.ms 100)";
        if (setup.equals("tuned")) {
            props.put(StreamsConfig.producerPrefix(ProducerConfig.COMPRESSION_TYPE_CONFIG), "snappy");
            props.put(StreamsConfig.producerPrefix(ProducerConfig.BATCH_SIZE_CONFIG), 1_000_000);
            props.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), 10);
            producer = "snappy/batch.size 1000000/linger.ms 10";
        }
        String extra = System.getenv("BENCH_STREAMS_PROPS");
        if (extra != null && !extra.isBlank()) {
            for (String kv : extra.split(";")) {
                String[] p = kv.split("=", 2);
                props.put(p[0].trim(), p[1].trim());
            }
            System.out.println("StreamsCopy: extra properties " + extra);
        }
        // The effective values: BENCH_STREAMS_PROPS may have overridden any.
        System.out.printf("StreamsCopy: %s, %s stream threads, commit.interval.ms %s, producer %s%n",
                setup, props.get(StreamsConfig.NUM_STREAM_THREADS_CONFIG), props.get(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG), producer);

        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(Arrays.asList(args[1].split(",")), Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()))
                .to(args[2], Produced.with(Serdes.ByteArray(), Serdes.ByteArray()));

        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(10));
            stopped.countDown();
        }));
        streams.setUncaughtExceptionHandler(e -> {
            System.err.println("stream thread failed: " + e);
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.start();
        stopped.await();
    }
}
