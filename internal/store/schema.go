package store

// migrations are applied in order, each once; meta's "schema" counts them
// (plus one for the meta table, which came first). Statements are split
// on ";\n"; {{id}}, {{blob}} and {{without_rowid}} are spelled per
// dialect. Never edit one that has shipped: add another.
var migrations = []string{
	`CREATE TABLE sender_domains (
		domain     TEXT PRIMARY KEY,
		first_seen BIGINT NOT NULL,
		last_seen  BIGINT NOT NULL,
		messages   BIGINT NOT NULL
	)`,

	// Every verdict, without the message: who sent what, what each stage
	// said and what was done.
	`CREATE TABLE verdicts (
		id          {{id}},
		at          BIGINT NOT NULL,
		node        TEXT NOT NULL,
		queue_id    TEXT NOT NULL,
		client_ip   TEXT NOT NULL,
		client_name TEXT NOT NULL,
		helo        TEXT NOT NULL,
		mail_from   TEXT NOT NULL,
		from_domain TEXT NOT NULL,
		rcpts       TEXT NOT NULL,
		action      TEXT NOT NULL,
		stage       TEXT NOT NULL,
		verdict     TEXT NOT NULL,
		iprev       TEXT NOT NULL,
		spf         TEXT NOT NULL,
		dkim        TEXT NOT NULL,
		dmarc       TEXT NOT NULL,
		arc         TEXT NOT NULL,
		score       INTEGER NOT NULL,
		rules       TEXT NOT NULL,
		reasons     TEXT NOT NULL
	);
	CREATE INDEX verdicts_at ON verdicts (at);
	CREATE INDEX verdicts_from_domain ON verdicts (from_domain, at);

	-- One DMARC evaluation as an aggregate report counts it. record is
	-- the report's <record> without <count>, as canonical JSON, so that
	-- equal rows group in SQL.
	CREATE TABLE dmarc_rows (
		id            {{id}},
		at            BIGINT NOT NULL,
		verdict_id    BIGINT,
		policy_domain TEXT NOT NULL,
		source_ip     TEXT NOT NULL,
		record        TEXT NOT NULL,
		published     TEXT NOT NULL,
		rua           TEXT NOT NULL,
		ri            INTEGER NOT NULL,
		report_id     BIGINT
	);
	CREATE INDEX dmarc_rows_pending ON dmarc_rows (policy_domain, report_id, at);
	CREATE INDEX dmarc_rows_at ON dmarc_rows (at);

	-- Aggregate reports made here, with the exact bytes to send, so a
	-- re-send is the same report.
	CREATE TABLE reports_out (
		id            {{id}},
		policy_domain TEXT NOT NULL,
		begin_at      BIGINT NOT NULL,
		end_at        BIGINT NOT NULL,
		report_id     TEXT NOT NULL,
		filename      TEXT NOT NULL,
		created_at    BIGINT NOT NULL,
		records       INTEGER NOT NULL,
		messages      BIGINT NOT NULL,
		xml_size      BIGINT NOT NULL,
		gz            {{blob}} NOT NULL,
		UNIQUE (policy_domain, begin_at)
	);

	-- One per report and destination. state: pending, sending (claimed by
	-- the sender holding the send lock), sent, failed (given up), dropped
	-- (not allowed: external destination without consent, too big).
	CREATE TABLE report_deliveries (
		id         {{id}},
		report     BIGINT NOT NULL REFERENCES reports_out (id) ON DELETE CASCADE,
		uri        TEXT NOT NULL,
		max_size   BIGINT NOT NULL,
		state      TEXT NOT NULL,
		attempts   INTEGER NOT NULL,
		next_try   BIGINT NOT NULL,
		last_error TEXT NOT NULL,
		sent_at    BIGINT NOT NULL,
		message_id TEXT NOT NULL,
		UNIQUE (report, uri)
	);
	CREATE INDEX report_deliveries_state ON report_deliveries (state, next_try);

	-- Aggregate reports received: parsed, or kept raw and flagged.
	CREATE TABLE reports_in (
		id           {{id}},
		received_at  BIGINT NOT NULL,
		source       TEXT NOT NULL,
		sha256       TEXT NOT NULL UNIQUE,
		filename     TEXT NOT NULL,
		org_name     TEXT NOT NULL,
		email        TEXT NOT NULL,
		report_id    TEXT NOT NULL,
		domain       TEXT NOT NULL,
		begin_at     BIGINT NOT NULL,
		end_at       BIGINT NOT NULL,
		policy       TEXT NOT NULL,
		messages     BIGINT NOT NULL,
		error        TEXT NOT NULL,
		raw          {{blob}}
	);
	CREATE INDEX reports_in_domain ON reports_in (domain, begin_at);

	CREATE TABLE report_records_in (
		id            {{id}},
		report        BIGINT NOT NULL REFERENCES reports_in (id) ON DELETE CASCADE,
		source_ip     TEXT NOT NULL,
		count         BIGINT NOT NULL,
		disposition   TEXT NOT NULL,
		dkim_aligned  TEXT NOT NULL,
		spf_aligned   TEXT NOT NULL,
		header_from   TEXT NOT NULL,
		envelope_from TEXT NOT NULL,
		dkim          TEXT NOT NULL,
		spf           TEXT NOT NULL,
		reasons       TEXT NOT NULL
	);
	CREATE INDEX report_records_in_report ON report_records_in (report)`,

	// Received reports are believed only when the message that carried
	// them passed DMARC (RFC 9990 §3.3); those stored before this was
	// checked count as unauthenticated. reporter is the domain a rate
	// limit counts by. Counts are clamped as SaveReceived now does, so
	// that sums cannot overflow.
	`ALTER TABLE reports_in ADD COLUMN authenticated INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE reports_in ADD COLUMN auth TEXT NOT NULL DEFAULT 'stored before reports were authenticated';
	ALTER TABLE reports_in ADD COLUMN reporter TEXT NOT NULL DEFAULT '';
	CREATE INDEX reports_in_reporter ON reports_in (reporter, received_at);
	UPDATE report_records_in SET count = 4294967296 WHERE count > 4294967296;
	UPDATE report_records_in SET count = 0 WHERE count < 0;
	UPDATE reports_in SET messages = 85899345920000 WHERE messages > 85899345920000;
	UPDATE reports_in SET messages = 0 WHERE messages < 0`,

	// Greylisting (internal/greylist): one row per triplet of client
	// network, normalized sender and recipient, with when its delay began,
	// when it was last asked for and when it passed (0: not yet); and per
	// client, how many of its triplets passed (counted at most once an
	// hour), for the auto-allow. Times are Unix seconds. last_seen is
	// indexed for the retention purge. On SQLite the triplet table is
	// WITHOUT ROWID (the key is the table: one B-tree less to write for
	// each new triplet).
	`CREATE TABLE greylist_triplets (
		client     TEXT NOT NULL,
		sender     TEXT NOT NULL,
		recipient  TEXT NOT NULL,
		first_seen BIGINT NOT NULL,
		last_seen  BIGINT NOT NULL,
		passed_at  BIGINT NOT NULL,
		PRIMARY KEY (client, sender, recipient)
	){{without_rowid}};
	CREATE INDEX greylist_triplets_last_seen ON greylist_triplets (last_seen);
	CREATE TABLE greylist_clients (
		client    TEXT PRIMARY KEY,
		passes    BIGINT NOT NULL,
		last_seen BIGINT NOT NULL
	);
	CREATE INDEX greylist_clients_last_seen ON greylist_clients (last_seen)`,

	// The allow and block lists (internal/lists, store/lists.go): one row
	// per list, kind and normalized value; expires 0 is never. Every
	// change bumps meta's lists_version, which each host's cache polls.
	`CREATE TABLE list_entries (
		id         {{id}},
		list       TEXT NOT NULL,
		kind       TEXT NOT NULL,
		value      TEXT NOT NULL,
		note       TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		expires_at BIGINT NOT NULL,
		UNIQUE (list, kind, value)
	)`,

	// The classifier's Bayes models (store/model.go, classify.Shared):
	// per model its table size, a version raised by every change and the
	// messages learnt; per bucket in use its junk and ham counts and the
	// version that last changed it, so that each host rereads only what
	// changed; and the messages learnt (a hash, never the text), against
	// learning one twice. IF NOT EXISTS: an upgrade test replays the
	// migrations over these tables.
	`CREATE TABLE IF NOT EXISTS model_meta (
		name    TEXT PRIMARY KEY,
		bits    INTEGER NOT NULL,
		version BIGINT NOT NULL,
		junk    BIGINT NOT NULL,
		ham     BIGINT NOT NULL
	);
	CREATE TABLE IF NOT EXISTS model_buckets (
		name    TEXT NOT NULL,
		bucket  BIGINT NOT NULL,
		junk    BIGINT NOT NULL,
		ham     BIGINT NOT NULL,
		version BIGINT NOT NULL,
		PRIMARY KEY (name, bucket)
	){{without_rowid}};
	CREATE INDEX IF NOT EXISTS model_buckets_version ON model_buckets (name, version);
	CREATE TABLE IF NOT EXISTS model_learned (
		name       TEXT NOT NULL,
		msg_key    TEXT NOT NULL,
		learned_as TEXT NOT NULL,
		learned_at BIGINT NOT NULL,
		PRIMARY KEY (name, msg_key)
	);
	CREATE INDEX IF NOT EXISTS model_learned_at ON model_learned (name, learned_at)`,
	// Every decision, searchable (the admin's day): where it was decided
	// (milter, policy, helo, connect), the header From, Message-ID,
	// Subject (or its hash, store.subject_hash), size, the reply the
	// client saw, details as JSON (each stage's result and reason, every
	// hit with weight and explanation, headers added), the feedback a
	// person gave, and the classifier's hashed features (never text) so
	// that a click in the dashboard can be learnt without the message.
	`ALTER TABLE verdicts ADD COLUMN source TEXT NOT NULL DEFAULT 'milter';
	ALTER TABLE verdicts ADD COLUMN header_from TEXT NOT NULL DEFAULT '';
	ALTER TABLE verdicts ADD COLUMN message_id TEXT NOT NULL DEFAULT '';
	ALTER TABLE verdicts ADD COLUMN subject TEXT NOT NULL DEFAULT '';
	ALTER TABLE verdicts ADD COLUMN size BIGINT NOT NULL DEFAULT 0;
	ALTER TABLE verdicts ADD COLUMN reply TEXT NOT NULL DEFAULT '';
	ALTER TABLE verdicts ADD COLUMN details TEXT NOT NULL DEFAULT '';
	ALTER TABLE verdicts ADD COLUMN feedback TEXT NOT NULL DEFAULT '';
	ALTER TABLE verdicts ADD COLUMN features {{blob}};
	CREATE INDEX verdicts_queue_id ON verdicts (queue_id);
	CREATE INDEX verdicts_message_id ON verdicts (message_id);
	CREATE INDEX verdicts_client_ip ON verdicts (client_ip, at);
	CREATE INDEX verdicts_mail_from ON verdicts (mail_from, at)`,

	// Reputation of authenticated identities (internal/reputation): per
	// kind (from_domain, dkim, spf, net) and identity, ham and spam
	// evidence that decays with time (the decay applied at updated_at).
	// correspondents: outside addresses our own users wrote to (seen when
	// mailwall signs), for the known-correspondent ham signal.
	// learn_quota: what one sender domain taught per day and class, the
	// guard against poisoning by automatic learning.
	`CREATE TABLE reputation (
		kind       TEXT NOT NULL,
		identity   TEXT NOT NULL,
		ham        DOUBLE PRECISION NOT NULL,
		spam       DOUBLE PRECISION NOT NULL,
		first_seen BIGINT NOT NULL,
		updated_at BIGINT NOT NULL,
		PRIMARY KEY (kind, identity)
	);
	CREATE INDEX reputation_updated ON reputation (updated_at);
	CREATE TABLE correspondents (
		address    TEXT PRIMARY KEY,
		first_seen BIGINT NOT NULL,
		last_seen  BIGINT NOT NULL,
		messages   BIGINT NOT NULL
	);
	CREATE INDEX correspondents_last_seen ON correspondents (last_seen);
	CREATE TABLE learn_quota (
		day    BIGINT NOT NULL,
		domain TEXT NOT NULL,
		class  TEXT NOT NULL,
		count  BIGINT NOT NULL,
		PRIMARY KEY (day, domain, class)
	)`,

	// The classifier models' learning as a log (store/model.go): a
	// batch's net change per bucket is one row (n changes, packed),
	// folded into model_buckets when the log grows long; a host reads
	// the changes after the version it holds.
	`CREATE TABLE IF NOT EXISTS model_deltas (
		name    TEXT NOT NULL,
		version BIGINT NOT NULL,
		n       BIGINT NOT NULL,
		deltas  {{blob}} NOT NULL,
		PRIMARY KEY (name, version)
	)`,

	// The classifier models: the version of a model's last fold of its
	// log (or import), which tells a host whose copy is older to read the
	// model whole; the per-bucket version index goes (hosts read the log,
	// not the buckets changed, and keeping the index halved the fold's
	// speed). IF NOT EXISTS, ON CONFLICT: the upgrade test replays this.
	`CREATE TABLE IF NOT EXISTS model_folds (
		name   TEXT PRIMARY KEY,
		folded BIGINT NOT NULL
	);
	INSERT INTO model_folds (name, folded) SELECT name, version FROM model_meta WHERE true ON CONFLICT (name) DO NOTHING;
	DROP INDEX IF EXISTS model_buckets_version`,

	// DMARC rows' records leave out what is zero (dmarcjson.go): the
	// rows not yet reported are rewritten to that form, so that a report
	// groups them with the rows written after. Inside a JSON string a
	// quote is escaped, so each pattern matches only the field itself.
	`UPDATE dmarc_rows SET record =
	REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(record,
		',"Published":{"Domain":"","P":"","SP":"","NP":"","ADKIM":"","ASPF":"","Testing":false,"PSD":"","Pct":0,"DiscoveryMethod":"","FailureReportingFO":""}', ''),
		',"HeaderFrom":""', ''), ',"EnvelopeFrom":""', ''), ',"EnvelopeTo":""', ''), ',"PolicyDomain":""', ''),
		',"Disposition":""', ''), ',"DKIMAligned":""', ''), ',"SPFAligned":""', ''), ',"DKIM":null', ''),
		',"SPFDomain":""', ''), ',"SPFScope":""', ''), ',"SPFResult":""', ''), ',"Reasons":null', '')
	WHERE report_id IS NULL`,
}
