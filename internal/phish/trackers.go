package phish

// clickTrackers are the registered domains of mail services' click
// trackers: a newsletter sent through one shows its own site's address
// and links to the service, which counts the click and redirects.
// url_text_mismatch does not fire for them; the rest of the link checks
// still look at the host. Each is a domain the service's own
// documentation names for its tracked links or hosted pages. Read only.
var clickTrackers = map[string]bool{
	"list-manage.com":     true, // Mailchimp: *.us1.list-manage.com/track/click
	"mcusercontent.com":   true, // Mailchimp: hosted files and images
	"mailchi.mp":          true, // Mailchimp: campaign pages
	"sendgrid.net":        true, // Twilio SendGrid: ct.sendgrid.net, u123.ct.sendgrid.net
	"mailgun.org":         true, // Mailgun: email.mg.* CNAMEs point here
	"sparkpostmail.com":   true, // SparkPost: spgo.io and *.sparkpostmail.com click tracking
	"spgo.io":             true, // SparkPost: short tracking domain
	"hubspotlinks.com":    true, // HubSpot: tracked links in marketing email
	"hubspotemail.net":    true, // HubSpot: marketing email tracking
	"hs-sites.com":        true, // HubSpot: hosted landing pages
	"exct.net":            true, // Salesforce Marketing Cloud (ExactTarget): click.exct.net
	"exacttarget.com":     true, // Salesforce Marketing Cloud, older tracking host
	"pardot.com":          true, // Salesforce Pardot (Account Engagement): go.pardot.com
	"rs6.net":             true, // Constant Contact: r20.rs6.net/tn.jsp
	"constantcontact.com": true, // Constant Contact: hosted pages
	"createsend.com":      true, // Campaign Monitor: *.createsend1.com, createsend.com
	"createsend1.com":     true, // Campaign Monitor: tracked links
	"cmail19.com":         true, // Campaign Monitor: tracked links (cmail1..cmail30)
	"cmail20.com":         true, // Campaign Monitor: tracked links
	"klaviyo.com":         true, // Klaviyo: trk.klaviyo.com, ctrk.klaviyo.com
	"klclick.com":         true, // Klaviyo: click tracking domain
	"mandrillapp.com":     true, // Mailchimp Transactional (Mandrill): mandrillapp.com/track/click
	"awstrack.me":         true, // Amazon SES: click tracking (*.r.us-east-1.awstrack.me)
	"mktomail.com":        true, // Adobe Marketo: tracked links
	"sailthru.com":        true, // Sailthru
	"postmarkapp.com":     true, // Postmark: click tracking (track.pstmrk.it since 2021)
	"pstmrk.it":           true, // Postmark: click tracking
	"brevo.com":           true, // Brevo (Sendinblue)
	"sendibt3.com":        true, // Brevo (Sendinblue): tracked links
	"sendinblue.com":      true, // Brevo, former name
	"mailjet.com":         true, // Mailjet: *.mjt.lu tracking, hosted pages
	"mjt.lu":              true, // Mailjet: tracked links
}
