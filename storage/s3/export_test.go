package s3

// Internals for the tests of package s3_test.

// OpPut is the operation name of Put.
const OpPut = opPut

// WrapErr is Store.wrapErr for a store of bucket "bucket" and key "key".
func WrapErr(op string, err error) error {
	return (&Store{bucket: "bucket"}).wrapErr(op, "key", err)
}

var (
	ChoosePartSize = choosePartSize
	ParseRestore   = parseRestore
)
