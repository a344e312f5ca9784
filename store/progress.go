package store

import "context"

// Progress is told how far a long operation has come: done of total
// units (bytes, messages or rows, as the operation says; total 0 when it
// is not known). It is called from the goroutine doing the work, as
// often as that likes, so it must be cheap and must not block; whoever
// shows it rate-limits.
type Progress func(done, total int64)

type progressKey struct{}

// WithProgress returns a context that carries p to the long operations
// run with it (an account's deletion, a backup, a restore, a retention
// sweep), which report to it with ReportProgress. Like net/http/httptrace,
// it rides on the context so that layers in between (the account service,
// the control socket) pass it on without changing their signatures.
func WithProgress(ctx context.Context, p Progress) context.Context {
	if p == nil {
		return ctx
	}
	return context.WithValue(ctx, progressKey{}, p)
}

// ReportProgress tells the Progress carried by ctx, if any, how far an
// operation has come.
func ReportProgress(ctx context.Context, done, total int64) {
	if p, ok := ctx.Value(progressKey{}).(Progress); ok {
		p(done, total)
	}
}
