// Package grpc_recovery is a test-bed stand-in for go-grpc-middleware v1's recovery (see README.md).
package grpc_recovery

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
)

type RecoveryHandlerFuncContext func(ctx context.Context, p any) error

type options struct{ handler RecoveryHandlerFuncContext }

type Option func(*options)

func WithRecoveryHandlerContext(f RecoveryHandlerFuncContext) Option {
	return func(o *options) { o.handler = f }
}

// UnaryServerInterceptor turns a panic in the handler into an error.
func UnaryServerInterceptor(opts ...Option) grpc.UnaryServerInterceptor {
	o := &options{}
	for _, opt := range opts {
		opt(o)
	}
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				if o.handler != nil {
					err = o.handler(ctx, p)
				} else {
					err = fmt.Errorf("panic: %v", p)
				}
			}
		}()
		return handler(ctx, req)
	}
}
