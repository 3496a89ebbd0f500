// Package hashivault is empty: HashiCorp Vault KMS is not in this build (see README.md).
package hashivault
