// Command kafka-ready exits 0 once the given Kafka brokers let a client create a
// topic and commit a transaction (testenv.CheckKafka), and 1 if they do not
// within -timeout. test/scripts/kafka.sh uses it as the readiness check.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/connectd/connectd/test/testenv"
)

func main() {
	brokers := flag.String("brokers", testenv.DefaultKafkaBrokers, "comma-separated seed brokers")
	rf := flag.Int("replication-factor", 1, "replication factor of the probe topic")
	timeout := flag.Duration("timeout", 2*time.Minute, "give up after this long")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	start := time.Now()
	if err := testenv.WaitKafka(ctx, strings.Split(*brokers, ","), int16(*rf)); err != nil {
		fmt.Fprintln(os.Stderr, "kafka-ready:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "kafka-ready: %s created a topic and committed a transaction (%s)\n",
		*brokers, time.Since(start).Round(time.Millisecond))
}
