package classify

import (
	"net/mail"

	"mailwall/internal/mailbox"
)

// parseAddress is mail.ParseAddress, for the plain forms most From and
// Reply-To fields have read by mailbox.Simple (net/mail's parser tries
// an addr-spec first and makes an error of it: a dozen allocations an
// address). TestParseAddress and FuzzParseAddress hold the two to the
// same answers.
func parseAddress(v string) (mail.Address, error) {
	if name, addr, ok := mailbox.Simple(v); ok {
		return mail.Address{Name: name, Address: addr}, nil
	}
	a, err := mail.ParseAddress(v)
	if err != nil {
		return mail.Address{}, err
	}
	return *a, nil
}
