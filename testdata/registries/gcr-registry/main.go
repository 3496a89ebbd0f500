// gcr-registry serves go-containerregistry's in-memory registry (pkg/registry)
// with the OCI referrers API switched on. Built by scripts/testbed.sh.
//
// It prints "listening on 127.0.0.1:PORT" on stdout once it accepts connections.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	quiet := flag.Bool("quiet", false, "do not log requests")
	flag.Parse()
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("gcr-registry: listen %s: %v", *addr, err)
	}
	opts := []registry.Option{registry.WithReferrersSupport(true)}
	if *quiet {
		opts = append(opts, registry.Logger(log.New(io.Discard, "", 0)))
	}
	fmt.Printf("listening on %s\n", l.Addr())
	os.Stdout.Sync()
	log.Fatal(http.Serve(l, registry.New(opts...)))
}
