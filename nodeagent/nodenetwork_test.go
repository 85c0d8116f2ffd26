package nodeagent

import (
	"testing"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

func TestInternalIP(t *testing.T) {
	n := &skiffv1alpha1.Node{Status: skiffv1alpha1.NodeStatus{Addresses: []skiffv1alpha1.NodeAddress{
		{Type: skiffv1alpha1.NodeHostName, Address: "vm"},
		{Type: skiffv1alpha1.NodeInternalIP, Address: "fd00::2"},
		{Type: skiffv1alpha1.NodeExternalIP, Address: "203.0.113.9"},
		{Type: skiffv1alpha1.NodeInternalIP, Address: "192.0.2.2"},
	}}}
	if got := internalIP(n); got != "192.0.2.2" {
		t.Errorf("internalIP = %q, want the first IPv4 InternalIP 192.0.2.2", got)
	}
}
