// Package version holds skiff's version, set at build time with -ldflags.
package version

// Version is skiff's own version; `make build` sets it from git.
var Version = "v0.1.0-dev"

// KubernetesMinor is the Kubernetes API level skiff serves (major.minor),
// from the k8s.io libraries it is built on.
const KubernetesMinor = "1.37"
