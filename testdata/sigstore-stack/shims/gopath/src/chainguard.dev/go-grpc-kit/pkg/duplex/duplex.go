// Package duplex is a test-bed stand-in for chainguard's go-grpc-kit duplex server (see
// README.md): one port serves gRPC (unencrypted HTTP/2) and the grpc-gateway HTTP/JSON API.
package duplex

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
)

// Duplex is a gRPC server and a gateway mux that forwards HTTP/JSON calls to it.
type Duplex struct {
	Server      *grpc.Server
	MUX         *runtime.ServeMux
	Port        int
	dialOptions []grpc.DialOption
}

// New takes grpc.ServerOption, grpc.DialOption and runtime.ServeMuxOption values, in any order.
func New(port int, opts ...any) *Duplex {
	var serverOpts []grpc.ServerOption
	var dialOpts []grpc.DialOption
	var muxOpts []runtime.ServeMuxOption
	for _, opt := range opts {
		switch o := opt.(type) {
		case grpc.ServerOption:
			serverOpts = append(serverOpts, o)
		case grpc.DialOption:
			dialOpts = append(dialOpts, o)
		case runtime.ServeMuxOption:
			muxOpts = append(muxOpts, o)
		default:
			panic(fmt.Sprintf("duplex.New: unknown option type %T", opt))
		}
	}
	return &Duplex{
		Server:      grpc.NewServer(serverOpts...),
		MUX:         runtime.NewServeMux(muxOpts...),
		Port:        port,
		dialOptions: dialOpts,
	}
}

// RegisterHandler registers a gateway handler that dials this server's own port.
func (d *Duplex) RegisterHandler(ctx context.Context, fn func(context.Context, *runtime.ServeMux, string, []grpc.DialOption) error) error {
	return fn(ctx, d.MUX, fmt.Sprintf("127.0.0.1:%d", d.Port), d.dialOptions)
}

// RegisterListenAndServeMetrics does nothing here: the test bed serves no metrics port.
func (d *Duplex) RegisterListenAndServeMetrics(int, bool) {}

// Serve serves gRPC and HTTP on lis until ctx ends.
func (d *Duplex) Serve(ctx context.Context, lis net.Listener) error {
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
				d.Server.ServeHTTP(w, r)
				return
			}
			d.MUX.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		Protocols:         new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	err := srv.Serve(lis)
	if errors.Is(err, http.ErrServerClosed) {
		return http.ErrServerClosed
	}
	return err
}
