package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sealmail/sealmail/policy"
)

// redacted replaces the value of any key whose name mentions a secret.
const redacted = "<redacted>"

// writeConfigYAML prints the effective configuration as YAML that
// loadConfig reads back, with secrets redacted, international domain
// names shown as people write them in a comment, and the argon2id cost
// in force where the configuration leaves it to the default.
func writeConfigYAML(w io.Writer, c *Config) error {
	// Values that mean "the default" are shown as the value in force.
	eff := *c
	p := c.kdfParams()
	eff.KDF = KDFConfig{Time: p.Time, MemoryKiB: p.MemoryKiB}
	return writeYAMLRedacted(w, &eff, commentIDNs)
}

// writeYAMLRedacted writes v as YAML with secret-looking keys redacted,
// after edit (if any) changed the node tree.
func writeYAMLRedacted(w io.Writer, v any, edit ...func(*yaml.Node)) error {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return fmt.Errorf("config: encode: %w", err)
	}
	for _, f := range edit {
		f(&n)
	}
	redact(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return fmt.Errorf("config: encode: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("config: encode: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// redact walks mapping nodes and blanks values under secret-looking keys.
func redact(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			name := strings.ToLower(k.Value)
			if (strings.Contains(name, "password") || strings.Contains(name, "secret")) && v.Value != "" {
				*v = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: redacted}
				continue
			}
			redact(v)
		}
		return
	}
	for _, c := range n.Content {
		redact(c)
	}
}

// commentIDNs adds the U-label form as a line comment to every scalar
// that is an A-label domain or address: "xn--bcher-kva.example #
// bücher.example".
func commentIDNs(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		local, domain := "", n.Value
		if at := strings.LastIndexByte(n.Value, '@'); at >= 0 {
			local, domain = n.Value[:at+1], n.Value[at+1:]
		}
		if policy.IsIDN(domain) {
			if d := policy.DisplayDomain(domain); d != domain {
				n.LineComment = local + d
			}
		}
		return
	}
	for _, c := range n.Content {
		commentIDNs(c)
	}
}
