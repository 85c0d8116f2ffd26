package gossip

import (
	"bytes"
	"strings"

	"k8s.io/klog/v2"
)

// logBridge turns memberlist's log lines into klog's, and spots the lines
// that say this member's probe of another failed, and that others suspect
// this member: memberlist has no other way to tell.
type logBridge struct {
	member   string
	suspects func(name string)
	// refuting is called when this member refutes a suspicion of itself.
	refuting func()
}

// refutePrefix is memberlist's (v0.7) words when it hears it is suspected.
const refutePrefix = "memberlist: Refuting a suspect message"

// suspectPrefix is memberlist's (v0.7) words when its probe of a member
// fails and it marks that member suspect.
const suspectPrefix = "memberlist: Suspect "

func (b *logBridge) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	level, msg, ok := strings.Cut(line, " ")
	if !ok {
		level, msg = "", line
	}
	if rest, ok := strings.CutPrefix(msg, suspectPrefix); ok {
		if name, _, ok := strings.Cut(rest, " has failed"); ok && b.suspects != nil {
			b.suspects(name)
		}
	}
	if strings.HasPrefix(msg, refutePrefix) && b.refuting != nil {
		b.refuting()
	}
	switch level {
	case "[ERR]", "[ERROR]":
		klog.ErrorS(nil, msg, "member", b.member)
	case "[WARN]":
		klog.InfoS(msg, "member", b.member)
	case "[INFO]":
		klog.V(2).InfoS(msg, "member", b.member)
	default:
		klog.V(4).InfoS(msg, "member", b.member)
	}
	return len(p), nil
}
