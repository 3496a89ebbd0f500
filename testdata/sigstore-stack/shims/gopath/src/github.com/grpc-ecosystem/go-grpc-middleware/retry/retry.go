// Package grpc_retry is a test-bed stand-in for go-grpc-middleware v1's retry (see README.md):
// calls go through once, unchanged.
package grpc_retry

import (
	"time"

	"google.golang.org/grpc"
)

type CallOption struct{}

func WithMax(uint) CallOption { return CallOption{} }

func WithPerRetryTimeout(time.Duration) CallOption { return CallOption{} }

func UnaryClientInterceptor(...CallOption) grpc.UnaryClientInterceptor { return nil }
