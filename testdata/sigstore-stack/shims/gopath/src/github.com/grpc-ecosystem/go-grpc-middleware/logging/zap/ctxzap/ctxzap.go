// Package ctxzap is a test-bed stand-in for go-grpc-middleware v1's ctxzap (see README.md).
package ctxzap

import (
	"context"

	"go.uber.org/zap"
)

type ctxKey struct{}

// ToContext returns a context carrying logger.
func ToContext(ctx context.Context, logger *zap.Logger) context.Context {
	return context.WithValue(ctx, ctxKey{}, logger)
}

// Extract returns the context's logger, or a no-op logger.
func Extract(ctx context.Context) *zap.Logger {
	if l, ok := ctx.Value(ctxKey{}).(*zap.Logger); ok && l != nil {
		return l
	}
	return zap.NewNop()
}
