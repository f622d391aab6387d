package phish

// clickTrackers are the registered domains of mail services' click
// trackers: a newsletter sent through one shows its own site's address
// and links to the service, which counts the click and redirects.
// url_text_mismatch does not fire for them; the rest of the link checks
// still look at the host. Each is a domain the service's own
// documentation names for its tracked links or hosted pages. Read only.
// Checked on 2026-12-06 against the providers' pages where they name the
// host: SparkPost's tracking-domains API (spgo.io, eu.spgo.io by
// default), Postmark's link-tracking guide (click.pstmrk.it), Mailgun's
// tracking CNAME (to mailgun.org), Amazon SES's configurable redirect
// domain (an "Amazon SES-operated domain", *.r.REGION.awstrack.me in
// delivered mail), Mailchimp's click-tracking help (a redirect through
// its servers, on *.list-manage.com).
var clickTrackers = map[string]bool{
	"list-manage.com":     true, // Mailchimp: *.us1.list-manage.com/track/click
	"mcusercontent.com":   true, // Mailchimp: hosted files and images
	"mailchi.mp":          true, // Mailchimp: campaign pages
	"sendgrid.net":        true, // Twilio SendGrid: ct.sendgrid.net, u123.ct.sendgrid.net
	"mailgun.org":         true, // Mailgun: a sender's tracking host (email.mg.*) is a CNAME to mailgun.org
	"sparkpostmail.com":   true, // SparkPost: its sending and bounce domain
	"spgo.io":             true, // SparkPost: the default tracking domain (eu.spgo.io for EU accounts)
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
	"awstrack.me":         true, // Amazon SES: click tracking (*.r.us-east-1.awstrack.me, one per region)
	"mktomail.com":        true, // Adobe Marketo: tracked links
	"sailthru.com":        true, // Sailthru
	"postmarkapp.com":     true, // Postmark: its own site, linked from its mail
	"pstmrk.it":           true, // Postmark: tracked links go through click.pstmrk.it
	"brevo.com":           true, // Brevo (Sendinblue)
	"sendibt3.com":        true, // Brevo (Sendinblue): tracked links
	"sendinblue.com":      true, // Brevo, former name
	"mailjet.com":         true, // Mailjet: *.mjt.lu tracking, hosted pages
	"mjt.lu":              true, // Mailjet: tracked links
}
