package nodelifecycle

import (
	"fmt"
	"time"
)

// Config configures the node lifecycle controller.
type Config struct {
	// GracePeriod is how long a Node may go unseen (its Lease not renewed,
	// no other liveness signal) before it is NotReady and tainted
	// unreachable (--node-grace-period). It should be a few of the agents'
	// --lease-interval, so that one late renewal does not count.
	GracePeriod time.Duration
}

// DefaultGracePeriod is three of the agents' default 5 s lease intervals.
const DefaultGracePeriod = 15 * time.Second

// DefaultConfig returns the defaults of `skiff server`.
func DefaultConfig() Config {
	return Config{GracePeriod: DefaultGracePeriod}
}

// Validate reports the first invalid field, named by its flag.
func (c Config) Validate() error {
	if c.GracePeriod <= 0 {
		return fmt.Errorf("--node-grace-period %s: must be positive", c.GracePeriod)
	}
	return nil
}
