// Package grpc_middleware is a test-bed stand-in for go-grpc-middleware v1 (see README.md).
package grpc_middleware

import (
	"context"

	"google.golang.org/grpc"
)

// ChainUnaryServer runs the interceptors in order, the first one outermost.
func ChainUnaryServer(interceptors ...grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		next := handler
		for i := len(interceptors) - 1; i >= 0; i-- {
			ic, inner := interceptors[i], next
			next = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, inner) }
		}
		return next(ctx, req)
	}
}
