package codec

import (
	"errors"
	"testing"
)

func TestRuleViolationsAreProtocolErrors(t *testing.T) {
	for _, err := range []error{ErrAckWithBody, ErrNoopWithBody, ErrControlWithReqAck} {
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("errors.Is(%q, ErrProtocol) = false, want true", err)
		}
	}
}

func TestTooLargeAndShortBufferAreNotProtocolErrors(t *testing.T) {
	// libchirp closes an oversized frame's connection with CH_ENOMEM, not
	// CH_PROTOCOL_ERROR; the node maps the two differently.
	for _, err := range []error{ErrTooLarge, ErrShortBuffer} {
		if errors.Is(err, ErrProtocol) {
			t.Errorf("errors.Is(%q, ErrProtocol) = true, want false", err)
		}
	}
}

func TestSentinelsAreDistinct(t *testing.T) {
	all := []error{ErrProtocol, ErrTooLarge, ErrAckWithBody, ErrNoopWithBody, ErrControlWithReqAck, ErrShortBuffer}
	for i, a := range all {
		for j, b := range all {
			if i != j && a == b {
				t.Errorf("sentinels %d and %d are the same value %q", i, j, a)
			}
		}
	}
}
