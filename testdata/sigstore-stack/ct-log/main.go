// Command ct-log is the test bed's certificate-transparency log for the local Sigstore stack: an
// RFC 6962 log (certificate-transparency-go's CTFE) in front of a Trillian log server and
// sequencer with Trillian's in-memory storage, all in one process, so that Fulcio can embed SCTs.
//
//	ct-log -addr 127.0.0.1:PORT -roots ROOTS.pem -key KEY.der [-prefix test]
//
// KEY.der is the log's private key (PKCS#8 or SEC 1 DER); ROOTS.pem the CA certificates it
// accepts chains to (Fulcio's). Serves /<prefix>/ct/v1/...; prints "listening on ADDR" when ready.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/google/certificate-transparency-go/trillian/ctfe"
	"github.com/google/certificate-transparency-go/trillian/ctfe/configpb"
	"github.com/google/trillian"
	"github.com/google/trillian/client"
	"github.com/google/trillian/crypto/keys"
	"github.com/google/trillian/crypto/keys/der"
	"github.com/google/trillian/crypto/keyspb"
	"github.com/google/trillian/extension"
	"github.com/google/trillian/log"
	"github.com/google/trillian/monitoring"
	"github.com/google/trillian/quota"
	"github.com/google/trillian/server"
	"github.com/google/trillian/server/admin"
	"github.com/google/trillian/storage/memory"
	"github.com/google/trillian/util/clock"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "HTTP address for the CT API")
	roots := flag.String("roots", "", "PEM file of the accepted root certificates")
	keyFile := flag.String("key", "", "DER file of the log's private key")
	prefix := flag.String("prefix", "test", "the log's URL path prefix")
	flag.Parse()
	if err := run(*addr, *roots, *keyFile, *prefix); err != nil {
		fmt.Fprintln(os.Stderr, "ct-log:", err)
		os.Exit(1)
	}
}

func run(addr, roots, keyFile, prefix string) error {
	ctx := context.Background()
	keys.RegisterHandler(&keyspb.PrivateKey{}, der.FromProto)
	keyDER, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}

	// Trillian: admin + log server + one sequencer over in-memory storage, gRPC on loopback.
	ts := memory.NewTreeStorage()
	reg := extension.Registry{
		AdminStorage: memory.NewAdminStorage(ts),
		LogStorage:   memory.NewLogStorage(ts, nil),
		QuotaManager: quota.Noop(),
	}
	grpcServer := grpc.NewServer()
	trillian.RegisterTrillianAdminServer(grpcServer, admin.New(reg, nil))
	trillian.RegisterTrillianLogServer(grpcServer, server.NewTrillianLogRPCServer(reg, clock.System))
	sequencer := log.NewOperationManager(log.OperationInfo{
		Registry:    reg,
		BatchSize:   100,
		NumWorkers:  1,
		RunInterval: 100 * time.Millisecond,
		TimeSource:  clock.System,
	}, log.NewSequencerManager(reg, 0))
	go sequencer.OperationLoop(ctx)
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = grpcServer.Serve(grpcLis) }()
	cc, err := grpc.NewClient(grpcLis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	logClient := trillian.NewTrillianLogClient(cc)
	tree, err := client.CreateAndInitTree(ctx, &trillian.CreateTreeRequest{Tree: &trillian.Tree{
		TreeState:       trillian.TreeState_ACTIVE,
		TreeType:        trillian.TreeType_LOG,
		MaxRootDuration: durationpb.New(time.Hour),
	}}, trillian.NewTrillianAdminClient(cc), logClient)
	if err != nil {
		return fmt.Errorf("create tree: %w", err)
	}

	// CTFE: the RFC 6962 HTTP API for that tree.
	privateKey, err := anypb.New(&keyspb.PrivateKey{Der: keyDER})
	if err != nil {
		return err
	}
	validated, err := ctfe.ValidateLogConfig(&configpb.LogConfig{
		LogId:                 tree.TreeId,
		Prefix:                prefix,
		RootsPemFile:          []string{roots},
		PrivateKey:            privateKey,
		MaxMergeDelaySec:      86400,
		ExpectedMergeDelaySec: 120,
	})
	if err != nil {
		return fmt.Errorf("log config: %w", err)
	}
	inst, err := ctfe.SetUpInstance(ctx, ctfe.InstanceOptions{
		Validated:     validated,
		Client:        logClient,
		Deadline:      10 * time.Second,
		MetricFactory: monitoring.InertMetricFactory{},
		RequestLog:    new(ctfe.DefaultRequestLog),
	})
	if err != nil {
		return fmt.Errorf("CTFE: %w", err)
	}
	mux := http.NewServeMux()
	for path, handler := range inst.Handlers {
		mux.Handle(path, handler)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Printf("listening on %s\n", lis.Addr())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(lis)
}
