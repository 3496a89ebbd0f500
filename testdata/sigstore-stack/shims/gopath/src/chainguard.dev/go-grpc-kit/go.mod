module chainguard.dev/go-grpc-kit

go 1.24
