// Command fluentloggerbench measures github.com/fluent/fluent-logger-golang with
// RequestAck, the sender the log forwarder was asked to start from, against the test
// receiver: records per second for one sender, one record per message, each acknowledged
// before the next. docs/logs.md and BENCHMARKS.md cite its figure. It lives in its own
// module so the agent does not depend on the library.
//
//	fluentloggerbench -address 127.0.0.1:24224 -records 20000
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
)

func main() {
	address := flag.String("address", "127.0.0.1:24224", "forward-protocol server")
	records := flag.Int("records", 20000, "records to send")
	flag.Parse()
	host, p, err := net.SplitHostPort(*address)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	port, _ := strconv.Atoi(p)
	lg, err := fluent.New(fluent.Config{FluentHost: host, FluentPort: port, RequestAck: true, SubSecondPrecision: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer lg.Close()
	pad := strings.Repeat("x", 80)
	start := time.Now()
	for i := 1; i <= *records; i++ {
		rec := map[string]string{"container_id": "0123456789ab", "container_name": "/bench", "source": "stdout",
			"log": fmt.Sprintf("f %09d %s", i, pad)}
		if err := lg.PostWithTime("docker.bench", time.Now(), rec); err != nil {
			fmt.Fprintln(os.Stderr, "post:", err)
			os.Exit(1)
		}
	}
	el := time.Since(start)
	fmt.Printf("fluent-logger-golang RequestAck: %d records in %.2f s = %.0f records/s\n", *records, el.Seconds(), float64(*records)/el.Seconds())
}
