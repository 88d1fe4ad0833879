package glacier

import (
	"bytes"
	"html"
	"net/url"
	"regexp"
)

var (
	listEntryRE = regexp.MustCompile(`(?s)<Contents>.*?</Contents>|<Version>.*?</Version>|<Upload>.*?</Upload>`)
	keyRE       = regexp.MustCompile(`(?s)<Key>(.*?)</Key>`)
	uploadIDRE  = regexp.MustCompile(`(?s)<UploadId>(.*?)</UploadId>`)
	classRE     = regexp.MustCompile(`(?s)<StorageClass>.*?</StorageClass>`)
)

// rewriteList sets the <StorageClass> of every <Contents> and <Version>
// entry of a listing to objectClass(key), and of every <Upload> entry to
// uploadClass(uploadID), where those return a class; other entries and the
// rest of the document are left byte for byte. urlKeys says keys are
// URL-encoded (encoding-type=url).
//
// The rewrite is textual on purpose: re-encoding with encoding/xml would
// change namespaces and formatting that clients never asked us to touch.
func rewriteList(body []byte, urlKeys bool, objectClass, uploadClass func(string) string) []byte {
	return listEntryRE.ReplaceAllFunc(body, func(entry []byte) []byte {
		var class string
		if bytes.HasPrefix(entry, []byte("<Upload>")) {
			m := uploadIDRE.FindSubmatch(entry)
			if m == nil {
				return entry
			}
			class = uploadClass(html.UnescapeString(string(m[1])))
		} else {
			m := keyRE.FindSubmatch(entry)
			if m == nil {
				return entry
			}
			key := html.UnescapeString(string(m[1]))
			if urlKeys {
				if k, err := url.QueryUnescape(key); err == nil {
					key = k
				}
			}
			class = objectClass(key)
		}
		if class == "" {
			return entry
		}
		elem := []byte("<StorageClass>" + class + "</StorageClass>")
		if classRE.Match(entry) {
			return classRE.ReplaceAllLiteral(entry, elem)
		}
		// No class given: insert one before the closing tag.
		end := bytes.LastIndex(entry, []byte("</"))
		out := append([]byte{}, entry[:end]...)
		out = append(out, elem...)
		return append(out, entry[end:]...)
	})
}
