package config

import (
	"fmt"
	"net/netip"
)

// MaxDebugPeers bounds log.debug_peers: the set is matched against every
// client, and it is for looking at a few peers, not a network map.
const MaxDebugPeers = 64

// DebugPeerPrefixes parses log.debug_peers.
func (c LogConfig) DebugPeerPrefixes() ([]netip.Prefix, error) {
	if len(c.DebugPeers) > MaxDebugPeers {
		return nil, fmt.Errorf("%d entries; at most %d", len(c.DebugPeers), MaxDebugPeers)
	}
	return ParsePrefixes(c.DebugPeers)
}

func (c *Config) validDebugPeers() error {
	_, err := c.Log.DebugPeerPrefixes()
	return err
}
