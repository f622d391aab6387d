package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mailwall/internal/classify"
)

// classifierModel trains a Bayes model on internal/classify's handwritten
// test messages (four spam, four ham, each taught three times), saves it
// as DIR/bayes.model and returns a config file that enables it.
func classifierModel(t *testing.T) (cfgPath, modelPath string) {
	t.Helper()
	paths, err := filepath.Glob("../../internal/classify/testdata/handwritten/*.eml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no training messages: %v", err)
	}
	m := classify.NewBayes(16)
	c := classify.NewClassifier(m, nil)
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fields, body := classify.ParseMessage(raw)
		for range 3 {
			if err := c.Learn(&classify.Message{Fields: fields, Body: body}, strings.SplitN(filepath.Base(p), "-", 2)[0]); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := t.TempDir()
	if err := classify.SaveModel(context.Background(), classify.DirStore{Dir: dir}, "bayes", m); err != nil {
		t.Fatal(err)
	}
	modelPath = filepath.Join(dir, "bayes.model")
	cfgPath = filepath.Join(dir, "mailwall.yaml")
	cfg := "checks:\n  classifier:\n    enabled: true\n    model: " + modelPath + "\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, modelPath
}

// TestCheckMessageClassifier: with checks.classifier on, a spammy message
// that passes SPF and DMARC gets the classifier's hit, weighted and
// explained, in check-message's JSON (its report under "classifier", the
// phishing rules' under "phish" as before) and in X-Mailwall-Score.
func TestCheckMessageClassifier(t *testing.T) {
	cfgPath, _ := classifierModel(t)
	dnsAddr := corpusLabDNS(t)
	msg := "From: Lottery Desk <desk@desctrl.test>\r\nTo: taro@rcpt.test\r\nSubject: Claim your free prize now\r\nMessage-ID: <s@desctrl.test>\r\n\r\n" +
		"Congratulations winner, you won our lottery draw! Claim your cash prize now: click here, send your bank account\r\n" +
		"details and the small processing fee. Limited time exclusive offer, act now.\r\n"
	args := []string{"check-message", "--config", cfgPath, "--dns", dnsAddr, "--ip", "127.0.1.1", "--helo", "desctrl.test",
		"--sender", "desk@desctrl.test", "--rcpt", "taro@rcpt.test"}
	code, out, errs := runCLIWithInput(msg, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r struct {
		DMARC struct{ Result string }
		Phish struct {
			Score int
			Hits  []struct{ Rule string }
		}
		Classifier struct {
			Probability float64
			Class       string
			Explanation string
		}
		Headers []struct{ Name, Value string }
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if r.DMARC.Result != "pass" || r.Classifier.Probability < 0.99 || r.Classifier.Class != "junk" ||
		!strings.HasPrefix(r.Classifier.Explanation, "classifier 1.00 junk: strongest features: ") {
		t.Errorf("dmarc %s classifier %+v\n%s", r.DMARC.Result, r.Classifier, out)
	}
	score := ""
	for _, h := range r.Headers {
		if h.Name == "X-Mailwall-Score" {
			score = h.Value
		}
	}
	if !strings.Contains(score, "classifier=45") {
		t.Errorf("X-Mailwall-Score:%s, want classifier=45 among the rules (phish: %+v)", score, r.Phish)
	}
	code, out, errs = runCLIWithInput(msg, args...)
	if code != 0 || !strings.Contains(out, "# rule: classifier (45): classifier 1.00 junk: strongest features: ") {
		t.Errorf("exit %d: %s\n%s", code, errs, out)
	}
}

// TestClassifierModelErrors: a classifier of a kind the starter model is
// not, without a model, or with a missing model, stops check-message (and
// serve, and a reload) with the key and the path.
func TestClassifierModelErrors(t *testing.T) {
	_, modelPath := classifierModel(t)
	dir := t.TempDir()
	for _, tc := range []struct{ cfg, want string }{
		{"checks:\n  classifier:\n    enabled: true\n    kind: ftrl\n", "checks.classifier.model: the starter model is a bayes model; kind ftrl needs a model file"},
		{"checks:\n  classifier:\n    enabled: true\n    model: " + filepath.Join(dir, "none.model") + "\n", "checks.classifier.model: classify: model file " + filepath.Join(dir, "none.model") + " does not exist"},
		{"checks:\n  classifier:\n    enabled: true\n    kind: ftrl\n    model: " + modelPath + "\n", "holds a bayes model, not ftrl"},
		{"checks:\n  analyzers: [classifier]\n  classifier:\n    enabled: true\n    model: " + modelPath + "\n", "checks.phish is enabled but not listed in checks.analyzers"},
	} {
		path := filepath.Join(dir, "mailwall.yaml")
		if err := os.WriteFile(path, []byte(tc.cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errs := runCLIWithInput("From: a@b.test\r\n\r\nx\r\n", "check-message", "--config", path, "--dns", "127.0.0.1:1", "--ip", "192.0.2.1", "--helo", "x.test", "--sender", "a@b.test")
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, stderr %q, want %q", tc.cfg, code, errs, tc.want)
		}
	}
}

// TestMilterRulesClassifier: the milter's rules, built at serve's start
// and again on every SIGHUP, run the classifier after the phishing
// rules when it is enabled, and a reload whose model is gone fails (the
// running rules stay) rather than run without it.
func TestMilterRulesClassifier(t *testing.T) {
	cfgPath, modelPath := classifierModel(t)
	cfg, err := loadConfig(cfgPath, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := newMilterRules(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range rules.pipe.Analyzers {
		names = append(names, a.Name())
	}
	if strings.Join(names, ",") != "phish,classifier" {
		t.Errorf("analyzers %v, want phish,classifier", names)
	}
	cfg.Checks.Analyzers = []string{"classifier", "phish"}
	if rules, err = newMilterRules(cfg, nil, nil); err != nil || rules.pipe.Analyzers[0].Name() != "classifier" {
		t.Errorf("order from checks.analyzers: %v", err)
	}
	if err := os.Remove(modelPath); err != nil {
		t.Fatal(err)
	}
	if _, err := newMilterRules(cfg, nil, nil); err == nil || !strings.Contains(err.Error(), modelPath+" does not exist") {
		t.Errorf("model removed: %v", err)
	}
}

// TestTrainEval: mailwall train learns a model from a labels file (the
// handwritten messages: four spam, four ham) in the compact encoding and
// as NAME.model; mailwall eval judges the same messages with it, with
// --train-labels, and with the rules alone, printing the confusion
// matrix, the rates where 1% and 0.1% of the ham is flagged, and what
// decided; a labels file with an unknown class is refused with its line.
func TestTrainEval(t *testing.T) {
	dir := "../../internal/classify/testdata/handwritten"
	tmp := t.TempDir()
	labels := filepath.Join(tmp, "labels.tsv")
	var rows strings.Builder
	rows.WriteString("# file\tclass\n")
	for _, c := range []string{"spam", "ham"} {
		for i := 1; i <= 4; i++ {
			fmt.Fprintf(&rows, "%s-%d.eml\t%s\n", c, i, c)
		}
	}
	if err := os.WriteFile(labels, []byte(rows.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(tmp, "empty.yaml")
	if err := os.WriteFile(cfg, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	compact := filepath.Join(tmp, "site.mwc")
	code, out, errs := runCLI("train", "--config", cfg, "--labels", labels, "-o", compact, dir)
	if code != 0 || !strings.Contains(out, "a bayes model of 8 messages") {
		t.Fatalf("train: exit %d: %s%s", code, out, errs)
	}
	code, _, errs = runCLI("train", "--config", cfg, "--labels", labels, "-o", filepath.Join(tmp, "site.model"), dir)
	if _, err := os.Stat(filepath.Join(tmp, "site.model")); code != 0 || err != nil {
		t.Fatalf("train -o NAME.model: exit %d, %v: %s", code, err, errs)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"compact model", []string{"--model", compact}, []string{"model " + compact, "spam 100.0%, ham 0.00% flagged (tagged or worse)",
			"  spam          4        0        4", "the classifier's probability alone:", "1% of ham flagged at most", "0.1% of ham flagged at most",
			"spam flagged (4 of 4), rules: classifier (4)", "  strongest features: "}},
		{"NAME.model", []string{"--model", filepath.Join(tmp, "site.model")}, []string{"spam 100.0%, ham 0.00% flagged"}},
		{"trained first", []string{"--train-labels", labels}, []string{"trained a bayes model on 8 messages", "spam 100.0%, ham 0.00% flagged"}},
		{"rules alone", []string{"--no-classifier"}, []string{"spam 0.0%, ham 0.00% flagged"}},
	} {
		code, out, errs := runCLI(append([]string{"eval", "--config", cfg, "--labels", labels}, append(tc.args, dir)...)...)
		if code != 0 {
			t.Errorf("%s: exit %d: %s", tc.name, code, errs)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: no %q in\n%s", tc.name, w, out)
			}
		}
	}
	if err := os.WriteFile(labels, []byte("spam-1.eml\tspam\nham-1.eml\tmaybe\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI("eval", "--config", cfg, "--labels", labels, dir); code == 0 || !strings.Contains(errs, "line 2") {
		t.Errorf("unknown class: exit %d, %s", code, errs)
	}
	if code, _, _ := runCLI("eval", "--config", cfg, dir); code != 2 {
		t.Errorf("no --labels: exit %d, want 2", code)
	}
}
