// Package grpc_zap is a test-bed stand-in for go-grpc-middleware v1's logging/zap (see README.md).
package grpc_zap

import (
	"context"
	"path"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/logging/zap/ctxzap"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type MessageProducer func(ctx context.Context, msg string, level zapcore.Level, code codes.Code, err error, duration zapcore.Field)

type Decider func(fullMethodName string, err error) bool

type options struct {
	decider  Decider
	producer MessageProducer
}

type Option func(*options)

func WithDecider(f Decider) Option { return func(o *options) { o.decider = f } }

func WithMessageProducer(f MessageProducer) Option { return func(o *options) { o.producer = f } }

// UnaryServerInterceptor puts logger in the context and logs each call when it ends.
func UnaryServerInterceptor(logger *zap.Logger, opts ...Option) grpc.UnaryServerInterceptor {
	o := &options{}
	for _, opt := range opts {
		opt(o)
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		ctx = ctxzap.ToContext(ctx, logger.With(
			zap.String("grpc.service", path.Dir(info.FullMethod)[1:]),
			zap.String("grpc.method", path.Base(info.FullMethod))))
		resp, err := handler(ctx, req)
		if o.decider == nil || o.decider(info.FullMethod, err) {
			code := status.Code(err)
			d := zap.Duration("grpc.time", time.Since(start))
			if o.producer != nil {
				o.producer(ctx, "finished unary call with code "+code.String(), zapcore.InfoLevel, code, err, d)
			} else {
				ctxzap.Extract(ctx).Info("finished unary call", zap.Error(err), zap.String("grpc.code", code.String()), d)
			}
		}
		return resp, err
	}
}
