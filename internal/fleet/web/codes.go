package web

import "github.com/stratalinux/strata/internal/omaha"

// errorCodeNames are update_engine's ActionExitCode names for the codes a
// fleet operator sees most; the dashboard shows them beside the number.
var errorCodeNames = map[uint32]string{
	1: "Error", 2: "OmahaRequestError", 3: "OmahaResponseHandlerError", 4: "FilesystemCopierError",
	5: "PostinstallRunnerError", 7: "InstallDeviceOpenError", 8: "KernelDeviceOpenError",
	9: "DownloadTransferError", 10: "PayloadHashMismatchError", 11: "PayloadSizeMismatchError",
	12: "DownloadPayloadVerificationError", 14: "DownloadWriteError", 15: "NewRootfsVerificationError",
	20: "DownloadStateInitializationError", 21: "DownloadInvalidMetadataMagicString",
	30: "OmahaRequestEmptyResponseError", 31: "OmahaRequestXMLParseError", 34: "OmahaResponseInvalid",
	35: "OmahaUpdateIgnoredPerPolicy", 36: "OmahaUpdateDeferredPerPolicy", 37: "OmahaErrorInHTTPResponse",
	40: "OmahaUpdateDeferredForBackoff", 44: "RollbackError", 100: "DownloadIncomplete",
}

func errorCodeText(s string) string {
	code, flags, ok := omaha.ErrorCode(s)
	if !ok {
		return "(unparseable)"
	}
	name := errorCodeNames[code]
	if code >= 2000 && code < 3000 {
		name = "HTTP error"
	}
	if name == "" {
		name = "unknown"
	}
	out := "(" + name
	if flags&omaha.FlagTestOmahaURL != 0 {
		out += ", custom server"
	}
	if flags&omaha.FlagResumed != 0 {
		out += ", resumed"
	}
	return out + ")"
}
