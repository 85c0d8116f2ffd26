package mcp

import (
	"github.com/google/jsonschema-go/jsonschema"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// confirmKey names the confirmation in a multi round-trip call.
const confirmKey = "confirm"

// newestProtocol is the first protocol version whose clients answer
// input requests on a retry of the call (multi round-trip requests).
const newestProtocol = "2026-07-28"

// confirmation is the outcome of asking to confirm a destructive call.
type confirmation int

const (
	confirmed confirmation = iota
	// asking: return the result carrying the question to the client.
	asking
)

// confirm decides whether a destructive call may go ahead. A client that
// can elicit is asked, whatever the arguments say (the SDK sends older
// clients an elicitation request and newer ones an input request, and
// calls the tool again with the answer): a model cannot skip the user.
// For a client that cannot be asked, confirm: true in the arguments goes
// ahead, and without it the call is refused with a message saying so.
func (b *Bridge) confirm(req *sdk.CallToolRequest, argConfirm bool, question string) (confirmation, *sdk.CallToolResult, error) {
	if !b.canElicit(req) && argConfirm {
		return confirmed, nil, nil
	}
	if answer, ok := req.Params.InputResponses[confirmKey].(*sdk.ElicitResult); ok && answer != nil {
		if answer.Action == "accept" {
			return confirmed, nil, nil
		}
		return 0, nil, refuse("not confirmed: the user answered %q to %q; nothing was changed", answer.Action, question)
	}
	if !b.canElicit(req) {
		return 0, nil, refuse("%s needs confirmation and this client cannot be asked: call again with \"confirm\": true once the user agreed; nothing was changed", question)
	}
	return asking, &sdk.CallToolResult{InputRequests: sdk.InputRequestMap{confirmKey: &sdk.ElicitParams{
		Message:         question,
		RequestedSchema: &jsonschema.Schema{Type: "object", Properties: map[string]*jsonschema.Schema{}},
	}}}, nil
}

// canElicit reports whether the client can answer a form elicitation on
// this transport: a stateless HTTP session cannot send older clients a
// request of the server's own.
func (b *Bridge) canElicit(req *sdk.CallToolRequest) bool {
	caps := req.ClientCapabilities()
	if caps == nil || caps.Elicitation == nil {
		return false
	}
	if e := caps.Elicitation; e.Form == nil && e.URL != nil {
		return false
	}
	return !b.cfg.Stateless || req.ProtocolVersion() >= newestProtocol
}
