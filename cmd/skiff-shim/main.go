// Command skiff-shim watches over one container for the skiff agent: it
// holds the container's output pipes and writes its log, and records its
// exit code, so containers outlive agent restarts. `make build` embeds it in
// skiff; it is not run by hand.
package main

import "skiff.dev/skiff/nodeagent/shim"

func main() { shim.Main() }
