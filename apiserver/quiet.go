package apiserver

import (
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	auditinternal "k8s.io/apiserver/pkg/apis/audit"
	"k8s.io/apiserver/pkg/audit"
)

// A clean stop prints nothing: the embedded etcd logs its listeners'
// "server closed" as errors with stack traces when it is closed on
// purpose, and the audit backend reports every event of a request that
// finishes after it was shut down. Both are quiet once the stop begins.

// quietCore drops every entry once closing is set.
type quietCore struct {
	zapcore.Core
	closing *atomic.Bool
}

func (c quietCore) With(fields []zapcore.Field) zapcore.Core {
	return quietCore{Core: c.Core.With(fields), closing: c.closing}
}

func (c quietCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.closing.Load() || !c.Enabled(e.Level) {
		return ce
	}
	return ce.AddCore(e, c)
}

// etcdLogger is etcd's own JSON logger at level error, quiet once
// closing is set.
func etcdLogger(closing *atomic.Bool) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	cfg.Sampling = nil
	lg, err := cfg.Build()
	if err != nil {
		return nil, err
	}
	return lg.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return quietCore{Core: c, closing: closing} })), nil
}

// quietAudit is an audit backend that drops the events of requests that
// end after it was shut down, instead of logging an error for each.
type quietAudit struct {
	audit.Backend
	closed atomic.Bool
}

func (q *quietAudit) ProcessEvents(events ...*auditinternal.Event) bool {
	if q.closed.Load() {
		return true
	}
	return q.Backend.ProcessEvents(events...)
}

func (q *quietAudit) Shutdown() {
	q.closed.Store(true)
	q.Backend.Shutdown()
}
