// Package azure is empty: Azure KMS is not in this build (see README.md).
package azure
