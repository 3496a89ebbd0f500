// Package middleware is a test-bed stand-in for goa's gRPC request-ID middleware (see README.md).
package middleware

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// RequestIDMetadataKey is the incoming metadata key that carries the request ID.
const RequestIDMetadataKey = "x-request-id"

type requestIDOptions struct {
	useXRequestID bool
	limit         int
}

type RequestIDOption func(*requestIDOptions) *requestIDOptions

func UseXRequestIDMetadataOption(f bool) RequestIDOption {
	return func(o *requestIDOptions) *requestIDOptions { o.useXRequestID = f; return o }
}

func XRequestMetadataLimitOption(limit int) RequestIDOption {
	return func(o *requestIDOptions) *requestIDOptions { o.limit = limit; return o }
}

// UnaryRequestID makes sure every call has a request ID in its incoming metadata: the client's
// x-request-id (cut to the limit) when allowed, else a random one.
func UnaryRequestID(opts ...RequestIDOption) grpc.UnaryServerInterceptor {
	o := &requestIDOptions{}
	for _, opt := range opts {
		o = opt(o)
	}
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		md = md.Copy()
		id := ""
		if vals := md.Get(RequestIDMetadataKey); o.useXRequestID && len(vals) > 0 {
			id = vals[0]
			if o.limit > 0 && len(id) > o.limit {
				id = id[:o.limit]
			}
		}
		if id == "" {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		md.Set(RequestIDMetadataKey, id)
		return handler(metadata.NewIncomingContext(ctx, md), req)
	}
}
