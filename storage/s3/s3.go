package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cryophile/cryophile/storage"
)

var _ storage.Store = (*Store)(nil)

// S3's limits.
const (
	// MinPartSize is the smallest part of a multipart upload (but the last).
	MinPartSize = 5 << 20
	// MaxPartSize is the largest part of a multipart upload.
	MaxPartSize = 5 << 30
	// MaxParts is the most parts a multipart upload may have.
	MaxParts = 10000
	// MaxObjectSize is the largest object S3 stores.
	MaxObjectSize = 5 << 40
	// MaxPutSize is the largest object one PutObject may upload.
	MaxPutSize = 5 << 30
)

// Defaults for Options.
const (
	DefaultPartSize              = 64 << 20
	DefaultMultipartThreshold    = 64 << 20
	DefaultConcurrency           = 4
	DefaultMaxAttempts           = 10
	DefaultMaxBackoff            = 20 * time.Second
	DefaultResponseHeaderTimeout = 2 * time.Minute
	DefaultStallTimeout          = 2 * time.Minute
	DefaultRequestTimeout        = 5 * time.Minute
	DefaultGetResumes            = 5
)

// Options configure an S3 vault. Only Bucket is required.
type Options struct {
	// Bucket and KeyPrefix come from the vault URL s3://BUCKET/KEYPREFIX
	// (see ParseURL). Object keys are stored as KEYPREFIX/KEY; an empty
	// KeyPrefix stores them at the top of the bucket.
	Bucket    string
	KeyPrefix string

	// Region is the bucket's region; empty takes it from the SDK's usual
	// sources (AWS_REGION, the shared config profile), and failing those
	// us-east-1 when Endpoint is set (most S3-compatible services ignore
	// it but SigV4 needs one).
	Region string
	// Endpoint is the base URL of an S3-compatible service
	// ("http://127.0.0.1:9000"); empty means AWS.
	Endpoint string
	// PathStyle addresses buckets as ENDPOINT/BUCKET/KEY rather than
	// BUCKET.ENDPOINT/KEY, as most S3-compatible services want.
	PathStyle bool
	// Profile is the shared config profile (~/.aws/config) to use; empty
	// means AWS_PROFILE or "default".
	Profile string
	// Credentials, if not nil, replace the SDK's standard credential chain
	// (environment, shared config and credentials files, web identity,
	// container and instance roles). Tests use static credentials.
	Credentials aws.CredentialsProvider

	// PartSize is the part size of multipart uploads: default 64 MiB, at
	// least MinPartSize, and grown for an object so that it has at most
	// MaxParts parts.
	PartSize int64
	// MultipartThreshold is the largest object sent with one PutObject;
	// larger ones go up in parts. Default 64 MiB, at most MaxPutSize.
	MultipartThreshold int64
	// Concurrency is how many parts of one multipart upload go up at once;
	// default 4. Memory use for an unbuffered source is nil; for a plain
	// io.Reader it is at most Concurrency × part size.
	Concurrency int

	// MaxAttempts is how many times the SDK tries a request (default 10)
	// and MaxBackoff the longest it waits between two tries (default 20 s).
	MaxAttempts int
	MaxBackoff  time.Duration
	// ResponseHeaderTimeout bounds the wait for a response's headers once
	// the request has been sent (default 2 minutes); it applies only to
	// the HTTP client New builds.
	ResponseHeaderTimeout time.Duration
	// StallTimeout is how long a request body may go unread by the
	// transport, or a Read of a response body wait for data, before the
	// attempt is abandoned: an upload's is retried by the SDK, a
	// download's rest is requested again (default 2 minutes).
	StallTimeout time.Duration
	// RequestTimeout bounds every request that carries no object data
	// (HEAD, LIST, restore, delete, multipart bookkeeping), retries
	// included; default 5 minutes.
	RequestTimeout time.Duration
	// GetResumes is how many times in a row a cut GetObject body is
	// re-requested from where it stopped before Read fails (default 5).
	GetResumes int
	// HTTPClient, if not nil, replaces the HTTP client New builds (which
	// is the SDK's, with ResponseHeaderTimeout set and connection pooling
	// sized for Concurrency). With AWS_CA_BUNDLE set, the SDK refuses any
	// client but an *awshttp.BuildableClient.
	HTTPClient aws.HTTPClient
}

// Store is one S3 vault. It is safe for concurrent use.
type Store struct {
	client *awss3.Client
	bucket string
	prefix string // KeyPrefix + "/", or ""
	opts   Options
}

// New returns a Store for opts.Bucket. It loads the SDK configuration
// (region, credentials, profile) but sends no request: a service that is
// down when a daemon starts is a transient condition, found out by the
// first request.
//
// Retries are the SDK's standard retryer with MaxAttempts and MaxBackoff.
// Its client-side token bucket (each retry costs tokens that only
// successful requests pay back) is disabled: during a long provider outage
// it empties and then fails every request at once, without trying, even
// after the service is back. Capping attempts bounds the retries instead,
// and the freeze daemon retries whole uploads with its own backoff.
func New(ctx context.Context, opts Options) (*Store, error) {
	if opts.Bucket == "" {
		return nil, fmt.Errorf("s3: %w: no bucket given", storage.ErrPermanent)
	}
	opts.KeyPrefix = strings.Trim(opts.KeyPrefix, "/")
	if err := checkKeyPrefix(opts.KeyPrefix); err != nil {
		return nil, fmt.Errorf("s3: %w: key prefix %q: %v", storage.ErrPermanent, opts.KeyPrefix, err)
	}
	if opts.PartSize == 0 {
		opts.PartSize = DefaultPartSize
	}
	if opts.PartSize < MinPartSize || opts.PartSize > MaxPartSize {
		return nil, fmt.Errorf("s3: %w: part size %d outside S3's limits %d–%d", storage.ErrPermanent, opts.PartSize, MinPartSize, int64(MaxPartSize))
	}
	if opts.MultipartThreshold <= 0 {
		opts.MultipartThreshold = DefaultMultipartThreshold
	}
	opts.MultipartThreshold = min(opts.MultipartThreshold, MaxPutSize)
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.ResponseHeaderTimeout <= 0 {
		opts.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
	}
	if opts.StallTimeout <= 0 {
		opts.StallTimeout = DefaultStallTimeout
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.GetResumes <= 0 {
		opts.GetResumes = DefaultGetResumes
	}
	httpClient := opts.HTTPClient
	if httpClient == nil {
		httpClient = awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			// Without it a connection black-holed after the request was
			// sent waits for ever.
			tr.ResponseHeaderTimeout = opts.ResponseHeaderTimeout
			// Several stores' parts go to one host at once: keep their
			// connections rather than closing all but two.
			tr.MaxIdleConnsPerHost = max(tr.MaxIdleConnsPerHost, 4*opts.Concurrency)
		})
	}

	load := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = opts.MaxAttempts
				o.MaxBackoff = opts.MaxBackoff
				o.RateLimiter = ratelimit.None
			})
		}),
		// Thaw checks every download against the manifest's SHA-256; the
		// SDK's own check would hash each byte again, and cannot check a
		// range or a resumed body anyway.
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if opts.Region != "" {
		load = append(load, config.WithRegion(opts.Region))
	}
	if opts.Profile != "" {
		load = append(load, config.WithSharedConfigProfile(opts.Profile))
	}
	if opts.Credentials != nil {
		load = append(load, config.WithCredentialsProvider(opts.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("s3: bucket %s: load the AWS configuration: %w", opts.Bucket, err)
	}
	if cfg.Region == "" {
		if opts.Endpoint == "" {
			return nil, fmt.Errorf("s3: %w: bucket %s: no region: set the vault's region (or AWS_REGION)", storage.ErrPermanent, opts.Bucket)
		}
		cfg.Region = "us-east-1"
	}
	opts.Region = cfg.Region
	client := awss3.NewFromConfig(cfg, func(o *awss3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
	})
	s := &Store{client: client, bucket: opts.Bucket, opts: opts}
	if opts.KeyPrefix != "" {
		s.prefix = opts.KeyPrefix + "/"
	}
	return s, nil
}

// Client returns the SDK client the store uses.
func (s *Store) Client() *awss3.Client { return s.client }

// Bucket returns the store's bucket.
func (s *Store) Bucket() string { return s.bucket }

// KeyPrefix returns the prefix under which the store keeps its keys,
// without a trailing slash ("" for the top of the bucket).
func (s *Store) KeyPrefix() string { return strings.TrimSuffix(s.prefix, "/") }

// ParseURL splits a vault URL s3://BUCKET[/KEYPREFIX] into its bucket and
// key prefix (without leading or trailing slashes).
func ParseURL(u string) (bucket, keyPrefix string, err error) {
	pu, err := url.Parse(u)
	if err != nil {
		return "", "", fmt.Errorf("s3: vault url %q: %w", u, err)
	}
	switch {
	case pu.Scheme != "s3":
		return "", "", fmt.Errorf("s3: vault url %q: scheme is not s3://", u)
	case pu.Opaque != "":
		return "", "", fmt.Errorf("s3: vault url %q: want s3://BUCKET[/KEYPREFIX]", u)
	case pu.User != nil || pu.Port() != "":
		return "", "", fmt.Errorf("s3: vault url %q: no user or port allowed: the endpoint is configured separately", u)
	case pu.RawQuery != "" || pu.ForceQuery || pu.Fragment != "":
		return "", "", fmt.Errorf("s3: vault url %q: no query or fragment allowed", u)
	case pu.Host == "":
		return "", "", fmt.Errorf("s3: vault url %q: no bucket", u)
	}
	keyPrefix = strings.Trim(pu.Path, "/")
	if err := checkKeyPrefix(keyPrefix); err != nil {
		return "", "", fmt.Errorf("s3: vault url %q: key prefix: %v", u, err)
	}
	return pu.Host, keyPrefix, nil
}

// checkKeyPrefix refuses key prefixes that would make keys no tool can
// handle as paths.
func checkKeyPrefix(p string) error {
	if p == "" {
		return nil
	}
	for c := range strings.SplitSeq(p, "/") {
		switch c {
		case "":
			return errors.New("empty path component")
		case ".", "..":
			return fmt.Errorf("%q path component", c)
		}
	}
	return nil
}

// maxKeyLen is S3's limit on a key's length, in bytes.
const maxKeyLen = 1024

// objectKey returns the S3 key of key, or an error if key cannot be one.
func (s *Store) objectKey(op, key string) (string, error) {
	full := s.prefix + key
	switch {
	case key == "":
		return "", fmt.Errorf("s3: %s: %w: empty key", op, storage.ErrPermanent)
	case len(full) > maxKeyLen:
		return "", fmt.Errorf("s3: %s %s: %w: key longer than %d bytes", op, s.url(full), storage.ErrPermanent, maxKeyLen)
	}
	return full, nil
}

// url names an S3 key in messages.
func (s *Store) url(full string) string {
	return "s3://" + s.bucket + "/" + full
}

// metaCtx bounds a request that carries no object data.
func (s *Store) metaCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.RequestTimeout)
}
