package client

// ParseOKForTest is parseOK, for the tests of package client_test.
var ParseOKForTest = parseOK
