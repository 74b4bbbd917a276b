package agent

import _ "embed"

// Unit is the systemd unit that runs the agent (strata-agent.service).
//
//go:embed strata-agent.service
var Unit string
