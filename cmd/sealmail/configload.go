package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// This file turns defaults, a YAML file, SEALMAIL_* variables and flags
// into a Config. Everything it knows about keys it reads from Config's
// struct tags (configKeys); viper merges the sources and unmarshals them
// through configHook, which parses each value strictly by its field's
// type.

// defaultConfigFile is read when --config is not given and it exists.
const defaultConfigFile = "sealmail.yaml"

// envPrefix prefixes every environment variable: SEALMAIL_DATA_DIR.
const envPrefix = "SEALMAIL"

// keySep separates key levels inside viper. Not ".", because alias keys
// are addresses ("info@example.org"), which viper would split into levels.
const keySep = "::"

// Size is a number of bytes. Configuration files and the environment may
// write it with a unit: B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB
// (powers of 1024): "50MiB".
type Size int64

// configKey is one leaf key of Config, found by configKeys.
type configKey struct {
	name  string       // "limits.message_bytes"
	def   string       // the default as a configuration would write it
	min   string       // the smallest allowed value; "" for non-numbers
	typ   reflect.Type // the field's type
	index []int        // the field in Config (reflect.Value.FieldByIndex)
}

// configKeys lists every key in Config, in field order: nested structs
// are sections, every other field is a key named by its yaml tag.
var configKeys = sync.OnceValue(func() []configKey {
	var keys []configKey
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := prefix + f.Tag.Get("yaml")
			idx := append(slices.Clone(index), i)
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
				walk(f.Type, name+".", idx)
				continue
			}
			k := configKey{name: name, def: f.Tag.Get("default"), typ: f.Type, index: idx}
			if isNumber(f.Type) {
				k.min = "1"
				if f.Type == typeDuration {
					k.min = "1ns"
				}
				if m, ok := f.Tag.Lookup("min"); ok {
					k.min = m
				}
			}
			keys = append(keys, k)
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
	return keys
})

func isNumber(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Uint32: // Size and time.Duration are Int64
		return true
	}
	return false
}

// loadOptions says where configuration comes from besides the environment.
type loadOptions struct {
	File      string            // --config; "" means ./sealmail.yaml if present
	Overrides map[string]string // from flags, by key; highest precedence
}

// loadConfig reads defaults, then the optional YAML file, then SEALMAIL_*
// environment variables, then flag overrides, and validates the result.
// It returns the file it read ("" if none).
func loadConfig(opt loadOptions) (*Config, string, error) {
	v := newViper()
	file := opt.File
	if file == "" {
		if _, err := os.Stat(defaultConfigFile); err == nil {
			file = defaultConfigFile
		}
	}
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, "", fmt.Errorf("config: %w", err)
		}
		err = readConfigFile(v, f, file)
		f.Close()
		if err != nil {
			return nil, "", err
		}
	}
	c, err := configFromViper(v, opt.Overrides)
	if err != nil {
		return nil, "", err
	}
	return c, file, nil
}

// parseConfigBytes reads a configuration from YAML bytes with defaults and
// the environment, as loadConfig does for a file.
func parseConfigBytes(data []byte) (*Config, error) {
	v := newViper()
	if err := readConfigFile(v, bytes.NewReader(data), "config"); err != nil {
		return nil, err
	}
	return configFromViper(v, nil)
}

// newViper returns a viper instance holding sealmail's defaults.
func newViper() *viper.Viper {
	v := viper.NewWithOptions(viper.KeyDelimiter(keySep))
	for _, k := range configKeys() {
		if _, ok := reflect.New(k.typ).Interface().(*map[string][]string); !ok {
			v.SetDefault(viperKey(k.name), k.def)
		}
	}
	return v
}

// viperKey is a key as viper holds it: limits.recipients → limits::recipients.
func viperKey(name string) string { return strings.ReplaceAll(name, ".", keySep) }

// configFromViper layers the environment and overrides on v, unmarshals
// every key and validates the result.
func configFromViper(v *viper.Viper, overrides map[string]string) (*Config, error) {
	// A variable set to "" is the empty value, not unset, so
	// SEALMAIL_LISTEN_IMAPS= disables a listener.
	v.AllowEmptyEnv(true)
	for _, k := range configKeys() {
		if err := v.BindEnv(viperKey(k.name), envName(k.name)); err != nil {
			return nil, fmt.Errorf("config: bind %s: %w", envName(k.name), err)
		}
	}
	if err := checkKnownEnv(os.Environ()); err != nil {
		return nil, err
	}
	for name, val := range overrides {
		v.Set(viperKey(name), val)
	}
	var c Config
	err := v.UnmarshalExact(&c, viper.DecodeHook(configHook), func(dc *mapstructure.DecoderConfig) {
		dc.TagName = "yaml"
	})
	if err != nil {
		return nil, decodeError(err)
	}
	if err := checkMinimums(&c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// maxConfigBytes bounds the configuration file; a real one is a few KiB.
const maxConfigBytes = 1 << 20

// readConfigFile merges YAML from r into v and refuses unknown keys. name
// is for messages.
func readConfigFile(v *viper.Viper, r io.Reader, name string) error {
	data, err := io.ReadAll(io.LimitReader(r, maxConfigBytes+1))
	if err != nil {
		return fmt.Errorf("config: read %s: %w", name, err)
	}
	if len(data) > maxConfigBytes {
		return fmt.Errorf("config: %s: larger than %d bytes", name, maxConfigBytes)
	}
	v.SetConfigType("yaml")
	if err := v.MergeConfig(bytes.NewReader(data)); err != nil {
		return fmt.Errorf("config: %s: %w", name, err)
	}
	return checkKnownKeys(v.AllKeys(), name)
}

// envName is the environment variable for a key: listen.smtp →
// SEALMAIL_LISTEN_SMTP.
func envName(key string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// isKey reports whether name is a known key.
func isKey(name string) bool {
	return slices.ContainsFunc(configKeys(), func(k configKey) bool { return k.name == name })
}

// checkKnownKeys refuses keys (as viper lists them) that sealmail does
// not know, naming them, so a typo is never a silent default. UnmarshalExact
// would refuse them too, but this names the file and the whole key.
func checkKnownKeys(keys []string, file string) error {
	var unknown []string
	for _, key := range keys {
		name := strings.ReplaceAll(key, keySep, ".")
		if strings.HasPrefix(key, "aliases"+keySep) {
			continue
		}
		if !isKey(name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return fmt.Errorf("config: %s: unknown key %s", file, strings.Join(unknown, ", "))
}

// checkKnownEnv refuses SEALMAIL_* variables that match no key, naming
// them: SEALMAIL_LIMITS_RECIPENTS is a typo, not a silent default.
func checkKnownEnv(environ []string) error {
	var unknown []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix+"_") {
			continue
		}
		if !slices.ContainsFunc(configKeys(), func(k configKey) bool { return envName(k.name) == name }) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return fmt.Errorf("config: environment variable %s matches no configuration key (see `sealmail config show` for the keys; %s_<KEY> with dots as underscores)",
		strings.Join(unknown, ", "), envPrefix)
}

// decodeError names the key of the first value mapstructure refused:
// "config: limits.recipients: want an integer, got \"many\"".
func decodeError(err error) error {
	var de *mapstructure.DecodeError
	if !errors.As(err, &de) {
		return fmt.Errorf("config: %w", err)
	}
	key := de.Name()
	if i := strings.IndexByte(key, '['); i >= 0 {
		key = key[:i] // aliases[info@example.org][0] → aliases
	}
	return fmt.Errorf("config: %s: %w", key, de.Unwrap())
}

// Types configHook parses.
var (
	typeString   = reflect.TypeFor[string]()
	typeBool     = reflect.TypeFor[bool]()
	typeInt      = reflect.TypeFor[int]()
	typeUint32   = reflect.TypeFor[uint32]()
	typeSize     = reflect.TypeFor[Size]()
	typeDuration = reflect.TypeFor[time.Duration]()
	typeList     = reflect.TypeFor[[]string]()
	typeAliases  = reflect.TypeFor[map[string][]string]()
)

// configHook parses a raw value (typed from YAML, a string from the
// environment, a default or a flag) strictly by the type it decodes
// into, so that mapstructure only copies. Other types pass through.
func configHook(_ reflect.Type, to reflect.Type, raw any) (any, error) {
	bad := func(want string) error { return fmt.Errorf("want %s, got %s", want, describe(raw)) }
	switch to {
	case typeString:
		s, ok := raw.(string)
		if !ok {
			return nil, bad("a string")
		}
		return strings.TrimSpace(s), nil
	case typeBool:
		switch r := raw.(type) {
		case bool:
			return r, nil
		case string:
			if b, err := strconv.ParseBool(strings.TrimSpace(r)); err == nil {
				return b, nil
			}
		}
		return nil, bad("true or false")
	case typeInt, typeUint32:
		max := int64(1<<31 - 1)
		if to == typeUint32 {
			max = 1<<32 - 1
		}
		n, err := toInt(raw, false)
		if err != nil || n > max {
			return nil, bad("a non-negative integer")
		}
		return reflect.ValueOf(n).Convert(to).Interface(), nil
	case typeSize:
		n, err := toInt(raw, true)
		if err != nil {
			return nil, bad(`a size in bytes, like 52428800 or "50MiB"`)
		}
		return Size(n), nil
	case typeDuration:
		s, ok := raw.(string)
		if !ok {
			return nil, bad(`a duration with a unit, like "5m"`)
		}
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < 0 {
			return nil, bad(`a duration with a unit, like "5m"`)
		}
		return d, nil
	case typeList:
		l, err := toList(raw)
		if err != nil {
			return nil, bad("a list of strings")
		}
		return l, nil
	case typeAliases:
		return toAliases(raw)
	}
	return raw, nil
}

// describe renders a raw value for an error message without dumping
// anything large.
func describe(raw any) string {
	s := fmt.Sprintf("%#v", raw)
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}

// toList accepts a YAML list of strings, or a string (from the environment
// or a flag) of items separated by commas or white space.
func toList(raw any) ([]string, error) {
	switch r := raw.(type) {
	case nil:
		return []string{}, nil
	case []string:
		return slices.Clone(r), nil
	case []any:
		out := make([]string, 0, len(r))
		for _, e := range r {
			s, ok := e.(string)
			if !ok {
				return nil, errors.New("not a string")
			}
			out = append(out, strings.TrimSpace(s))
		}
		return out, nil
	case string:
		return strings.FieldsFunc(r, func(c rune) bool {
			return c == ',' || c == ' ' || c == '\t' || c == '\n'
		}), nil
	}
	return nil, errors.New("not a list")
}

// sizeUnits are the suffixes a size may carry.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1}}

// toInt accepts a YAML integer or a decimal string; sizes may carry a unit.
// Negative numbers and fractions are refused.
func toInt(raw any, size bool) (int64, error) {
	switch r := raw.(type) {
	case int:
		if r < 0 {
			return 0, errors.New("negative")
		}
		return int64(r), nil
	case int64:
		if r < 0 {
			return 0, errors.New("negative")
		}
		return r, nil
	case uint64:
		if r > 1<<62 {
			return 0, errors.New("too large")
		}
		return int64(r), nil
	case string:
		s := strings.TrimSpace(r)
		mult := int64(1)
		if size {
			for _, u := range sizeUnits {
				if strings.HasSuffix(s, u.suffix) {
					s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
					break
				}
			}
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || n > (1<<62)/mult {
			return 0, errors.New("not a size")
		}
		return n * mult, nil
	}
	return 0, errors.New("not an integer")
}

// toAliases accepts a YAML map of alias → list of addresses, or a string
// (from the environment) "alias=a,b; alias2=c".
func toAliases(raw any) (map[string][]string, error) {
	out := map[string][]string{}
	switch r := raw.(type) {
	case nil:
		return out, nil
	case map[string]any:
		for alias, targets := range r {
			l, err := toList(targets)
			if err != nil {
				return nil, fmt.Errorf("alias %q: want a list of addresses", alias)
			}
			out[alias] = l
		}
		return out, nil
	case string:
		for entry := range strings.SplitSeq(r, ";") {
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			alias, targets, ok := strings.Cut(entry, "=")
			if !ok {
				return nil, fmt.Errorf("want alias=address,address; …, got %q", entry)
			}
			l, _ := toList(targets)
			out[strings.TrimSpace(alias)] = l
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a map of alias to addresses, got %s", describe(raw))
}

// checkMinimums refuses a number below its key's minimum (1 unless the
// field's min tag says otherwise).
func checkMinimums(c *Config) error {
	cv := reflect.ValueOf(c).Elem()
	for _, k := range configKeys() {
		if k.min == "" {
			continue
		}
		minV, err := configHook(nil, k.typ, k.min)
		if err != nil {
			return fmt.Errorf("config: %s: internal: bad min tag %q: %w", k.name, k.min, err)
		}
		v, m := cv.FieldByIndex(k.index), reflect.ValueOf(minV)
		below := false
		if v.CanInt() {
			below = v.Int() < m.Int()
		} else {
			below = v.Uint() < m.Uint()
		}
		if below {
			return fmt.Errorf("config: %s: must be at least %s", k.name, k.min)
		}
	}
	return nil
}
