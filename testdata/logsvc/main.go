// Command logsvc writes known log lines for the log forwarder's end-to-end tests and
// benchmark. It is built statically and packed FROM scratch (image lookout-logsvc).
//
//	logsvc seq PREFIX N INTERVAL   write "PREFIX i" for i = 1..N, one every INTERVAL,
//	                               on stdout, and on stderr for every third i
//	logsvc mixed                   a 64 KiB line, a 1 MiB line, invalid UTF-8, an empty line
//	                               on stdout, then "done"
//	logsvc unicode                 non-ASCII lines (accents, CJK, emoji, HTML characters, a
//	                               tab, a carriage return inside), then "done"
//	logsvc flood DURATION          write numbered 100-byte lines as fast as it can for
//	                               DURATION, then "flood end N" with the count
//	logsvc big BYTES N             "big start", a line of BYTES bytes, "after i" for
//	                               i = 1..N, then "done", on stdout
//	logsvc record N                "START", then N indented 100-byte lines that never start
//	                               a record, then "done"
//	logsvc sleep                   sleep forever
//
// After its work it sleeps until stopped, so a test decides when the container goes.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: logsvc seq|mixed|flood|sleep …")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "seq":
		n, _ := strconv.Atoi(os.Args[3])
		every, _ := time.ParseDuration(os.Args[4])
		for i := 1; i <= n; i++ {
			if i%3 == 0 {
				fmt.Fprintf(os.Stderr, "%s %d\n", os.Args[2], i)
			} else {
				fmt.Printf("%s %d\n", os.Args[2], i)
			}
			time.Sleep(every)
		}
	case "mixed":
		w := bufio.NewWriterSize(os.Stdout, 4<<20)
		fmt.Fprintf(w, "L64K %s\n", strings.Repeat("a", 64*1024-5))
		fmt.Fprintf(w, "L1M %s\n", strings.Repeat("b", 1024*1024-4))
		w.WriteString("bad \xff\xfe utf8\n\n")
		w.WriteString("done\n")
		w.Flush()
	case "unicode":
		for _, l := range []string{"grüße aus Köln", "日本語のログ", "emoji 😀🚀", "<html> & \"quotes\" \\ back", "tab\there", "cr\rinside", "\u2028 separator"} {
			fmt.Println(l)
		}
		fmt.Println("done")
	case "big":
		size, _ := strconv.Atoi(os.Args[2])
		n, _ := strconv.Atoi(os.Args[3])
		fmt.Println("big start")
		chunk := []byte(strings.Repeat("x", 64<<10))
		for size > 0 {
			k := min(size, len(chunk))
			os.Stdout.Write(chunk[:k])
			size -= k
		}
		w := bufio.NewWriterSize(os.Stdout, 64*1024)
		w.WriteString("\n")
		for i := 1; i <= n; i++ {
			fmt.Fprintf(w, "after %d\n", i)
		}
		w.WriteString("done\n")
		w.Flush()
	case "record":
		n, _ := strconv.Atoi(os.Args[2])
		w := bufio.NewWriterSize(os.Stdout, 64*1024)
		w.WriteString("START\n")
		pad := strings.Repeat("z", 86)
		for i := 1; i <= n; i++ {
			fmt.Fprintf(w, "  more %06d %s\n", i, pad)
		}
		w.WriteString("done\n")
		w.Flush()
	case "flood":
		d, _ := time.ParseDuration(os.Args[2])
		w := bufio.NewWriterSize(os.Stdout, 64*1024)
		pad := strings.Repeat("x", 80)
		end := time.Now().Add(d)
		n := 0
		for time.Now().Before(end) {
			for j := 0; j < 100; j++ {
				n++
				fmt.Fprintf(w, "f %09d %s\n", n, pad)
			}
		}
		fmt.Fprintf(w, "flood end %d\n", n)
		w.Flush()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
}
