package shim

import (
	"os"
	"os/exec"
	"testing"
)

func TestProcessIdentity(t *testing.T) {
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if self.Pid != os.Getpid() || !self.Alive() {
		t.Fatalf("self %v: want this live process", self)
	}
	back, err := ParseProcess(self.String())
	if err != nil || back != self {
		t.Fatalf("round trip %v -> %q -> %v, %v", self, self.String(), back, err)
	}
	// Same pid, another start time: a pid reused by another process.
	if (Process{Pid: self.Pid, Start: self.Start + 1}).Alive() {
		t.Error("a record with another start time counts as alive")
	}
	// A process that ended, once reaped, is gone.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip(err)
	}
	if (Process{Pid: cmd.Process.Pid, Start: 1}).Alive() {
		t.Error("an ended process counts as alive")
	}
	if _, err := ParseProcess("garbage"); err == nil {
		t.Error("garbage parses")
	}
}

// TestLastRuntimeError: the runtime's own cause comes with its generic
// last line (runc 1.1 on a host without CAP_SYS_RESOURCE).
func TestLastRuntimeError(t *testing.T) {
	log := `{"level":"debug","msg":"nsexec-0[100]: => nsexec container setup","time":"t"}
{"level":"error","msg":"nsexec-0[100]: failed to update /proc/self/oom_score_adj: Permission denied","time":"t"}
{"level":"error","msg":"runc create failed: unable to start container process: can't get final child's PID from pipe: EOF","time":"t"}
`
	want := "nsexec-0[100]: failed to update /proc/self/oom_score_adj: Permission denied; runc create failed: unable to start container process: can't get final child's PID from pipe: EOF"
	if got := lastRuntimeError([]byte(log)); got != want {
		t.Errorf("lastRuntimeError = %q, want %q", got, want)
	}
	if got := lastRuntimeError([]byte("plain\nlast words\n")); got != "last words" {
		t.Errorf("a plain log: %q, want its last line", got)
	}
}
