// Command app is a TEST APP for the real node's pods, never shipped: the workload that meshwarden
// injects in the end-to-end tests. It answers HTTP on --listen (every path 200 "ok", so a readiness
// probe on any path passes when it reaches the app), and with --exit-after it exits 0 after that
// long, as a Job's work would.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"
)

func main() {
	listen := flag.String("listen", ":8080", "address to serve HTTP on")
	exitAfter := flag.Duration("exit-after", 0, "exit 0 after this long (0: serve until stopped)")
	flag.Parse()
	if *exitAfter > 0 {
		time.AfterFunc(*exitAfter, func() { os.Exit(0) })
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	log.Fatal(http.ListenAndServe(*listen, nil))
}
