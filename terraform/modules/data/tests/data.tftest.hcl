# Offline: every AWS call is answered by the mock provider, and the account facts are fixed
# below so the policies this module renders are known, and checked, at plan time.

mock_provider "aws" {
  # The provider checks these are ARNs when an apply run hands them on.
  mock_resource "aws_kms_key" {
    defaults = {
      arn = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/trainyard-test-rds-monitoring"
    }
  }
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
  mock_data "aws_region" {
    defaults = {
      name = "eu-west-1"
    }
  }
  mock_data "aws_secretsmanager_random_password" {
    defaults = {
      random_password = "Tok3nFromSecretsManagerTok3nFromSecretsManagerTok3nFromSecretsM"
    }
  }
}

variables {
  name                      = "trainyard-test"
  vpc_id                    = "vpc-0123456789abcdef0"
  subnet_ids                = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"]
  client_security_group_ids = ["sg-0cccccccccccccccc", "sg-0dddddddddddddddd"]
  bucket_name               = "trainyard-test-storage"
}

run "database_is_encrypted_private_backed_up_and_keeps_no_password" {
  command = plan

  assert {
    condition     = aws_db_instance.this.storage_encrypted == true
    error_message = "the database's storage must be encrypted"
  }
  assert {
    condition     = aws_db_instance.this.deletion_protection == true
    error_message = "deletion protection must be on by default"
  }
  assert {
    condition     = aws_db_instance.this.skip_final_snapshot == false && aws_db_instance.this.final_snapshot_identifier == "trainyard-test-final"
    error_message = "deleting the database must take a final snapshot by default"
  }
  assert {
    condition     = aws_db_instance.this.backup_retention_period == 7 && aws_db_instance.this.copy_tags_to_snapshot
    error_message = "automated backups must be kept backup_retention_days (7 by default), snapshots tagged"
  }
  assert {
    condition     = aws_db_instance.this.publicly_accessible == false
    error_message = "the database must not be publicly accessible"
  }
  assert {
    condition     = aws_db_instance.this.manage_master_user_password == true && aws_db_instance.this.password == null
    error_message = "RDS must manage the master password in Secrets Manager: no password in configuration or state"
  }
  assert {
    condition     = aws_db_instance.this.multi_az && aws_db_instance.this.iam_database_authentication_enabled && aws_db_instance.this.performance_insights_enabled
    error_message = "multi-AZ, IAM authentication and Performance Insights must be on by default"
  }
  assert {
    condition     = aws_db_instance.this.monitoring_interval == 60 && length(aws_iam_role.database_monitoring) == 1
    error_message = "Enhanced Monitoring must sample every 60 s with its own role"
  }
  assert {
    condition     = toset(aws_db_instance.this.enabled_cloudwatch_logs_exports) == toset(["postgresql", "upgrade"]) && aws_cloudwatch_log_group.database["postgresql"].name == "/aws/rds/instance/trainyard-test/postgresql"
    error_message = "the postgresql and upgrade logs must be exported into the module's log groups"
  }
  assert {
    condition     = contains([for p in aws_db_parameter_group.this.parameter : "${p.name}=${p.value}"], "rds.force_ssl=1") && aws_db_parameter_group.this.family == "postgres16"
    error_message = "the postgres16 parameter group must require TLS (rds.force_ssl=1)"
  }
  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.database) == 2 && alltrue([for r in aws_vpc_security_group_ingress_rule.database : r.from_port == 5432 && r.to_port == 5432 && contains(var.client_security_group_ids, r.referenced_security_group_id) && r.cidr_ipv4 == null])
    error_message = "PostgreSQL must admit port 5432 from each client security group and from no address range"
  }
  assert {
    condition     = aws_kms_key.data.enable_key_rotation && aws_kms_key.bucket.enable_key_rotation
    error_message = "both KMS keys must rotate"
  }
}

run "deletion_protection_follows_the_variable_when_off" {
  command = plan

  variables {
    deletion_protection = false
    skip_final_snapshot = true
  }

  assert {
    condition     = aws_db_instance.this.deletion_protection == false
    error_message = "deletion_protection = false must turn RDS deletion protection off"
  }
  assert {
    condition     = aws_db_instance.this.skip_final_snapshot && aws_db_instance.this.final_snapshot_identifier == null
    error_message = "skip_final_snapshot = true must drop the final snapshot"
  }
}

run "redis_encrypts_in_transit_and_at_rest_with_a_generated_auth_token" {
  command = plan

  assert {
    condition     = aws_elasticache_replication_group.this.transit_encryption_enabled && aws_elasticache_replication_group.this.at_rest_encryption_enabled
    error_message = "Redis must encrypt in transit and at rest"
  }
  assert {
    condition     = nonsensitive(aws_elasticache_replication_group.this.auth_token == data.aws_secretsmanager_random_password.redis_auth.random_password)
    error_message = "Redis must require the AUTH token generated by Secrets Manager"
  }
  assert {
    condition     = data.aws_secretsmanager_random_password.redis_auth.password_length >= 32 && data.aws_secretsmanager_random_password.redis_auth.exclude_punctuation
    error_message = "the auth token must be long and URL-safe"
  }
  assert {
    condition     = aws_elasticache_replication_group.this.num_cache_clusters == 2 && aws_elasticache_replication_group.this.automatic_failover_enabled && aws_elasticache_replication_group.this.multi_az_enabled
    error_message = "multi_az must give Redis a replica with automatic failover"
  }
  assert {
    condition     = aws_elasticache_replication_group.this.snapshot_retention_limit == 7
    error_message = "Redis snapshots must be kept backup_retention_days"
  }
  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.redis) == 2 && alltrue([for r in aws_vpc_security_group_ingress_rule.redis : r.from_port == 6379 && contains(var.client_security_group_ids, r.referenced_security_group_id)])
    error_message = "Redis must admit port 6379 from the client security groups only"
  }
  assert {
    condition     = aws_secretsmanager_secret.redis_auth.recovery_window_in_days == 7
    error_message = "the auth-token secret must be recoverable for a week after deletion"
  }
}

run "single_az_redis_has_no_replica" {
  command = plan

  variables {
    multi_az = false
  }

  assert {
    condition     = aws_elasticache_replication_group.this.num_cache_clusters == 1 && !aws_elasticache_replication_group.this.automatic_failover_enabled && !aws_db_instance.this.multi_az
    error_message = "multi_az = false must give one Redis node and a single-AZ database"
  }
}

run "bucket_is_private_versioned_kms_encrypted_and_tls_only" {
  command = plan

  assert {
    condition     = aws_s3_bucket_versioning.this.versioning_configuration[0].status == "Enabled"
    error_message = "the bucket must be versioned"
  }
  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default).sse_algorithm == "aws:kms" && one(aws_s3_bucket_server_side_encryption_configuration.this.rule).bucket_key_enabled
    error_message = "the bucket's default encryption must be SSE-KMS (with a bucket key)"
  }
  assert {
    condition = alltrue([
      aws_s3_bucket_public_access_block.this.block_public_acls,
      aws_s3_bucket_public_access_block.this.block_public_policy,
      aws_s3_bucket_public_access_block.this.ignore_public_acls,
      aws_s3_bucket_public_access_block.this.restrict_public_buckets,
    ])
    error_message = "all four public access block settings must be true"
  }
  assert {
    condition = anytrue([
      for s in jsondecode(aws_s3_bucket_policy.this.policy).Statement :
      s.Effect == "Deny" && s.Principal == "*" && s.Action == "s3:*"
      && try(s.Condition.Bool["aws:SecureTransport"], "") == "false"
      && toset(s.Resource) == toset(["arn:aws:s3:::trainyard-test-storage", "arn:aws:s3:::trainyard-test-storage/*"])
    ])
    error_message = "the bucket policy must deny every request without TLS, on the bucket and its objects"
  }
  assert {
    condition     = alltrue([for s in jsondecode(aws_s3_bucket_policy.this.policy).Statement : s.Effect == "Deny"])
    error_message = "the data bucket's policy must only deny: access is granted to roles through IAM"
  }
  assert {
    condition     = aws_s3_bucket_ownership_controls.this.rule[0].object_ownership == "BucketOwnerEnforced"
    error_message = "ACLs must be disabled on the bucket"
  }
  assert {
    condition     = aws_s3_bucket.logs.bucket == "trainyard-test-storage-logs" && aws_s3_bucket_logging.this.target_prefix == "s3-access/"
    error_message = "access to the bucket must be logged to <bucket>-logs"
  }
}

run "by_default_no_trained_weights_expire" {
  command = plan

  assert {
    condition = alltrue([
      for r in aws_s3_bucket_lifecycle_configuration.this.rule : r.status == "Disabled" if r.id == "expire-checkpoints"
    ])
    error_message = "without checkpoint_expiration_days no current object may expire (jobs/ holds the trained weights)"
  }
}

run "lifecycle_expires_checkpoints_and_old_versions" {
  command = plan

  variables {
    checkpoint_expiration_days = 14
  }

  assert {
    condition = anytrue([
      for r in aws_s3_bucket_lifecycle_configuration.this.rule :
      r.status == "Enabled" && try(r.filter[0].prefix, "") == "jobs/" && try(r.expiration[0].days, 0) == 14
    ])
    error_message = "objects under jobs/ (checkpoints) must expire after checkpoint_expiration_days"
  }
  assert {
    condition = anytrue([
      for r in aws_s3_bucket_lifecycle_configuration.this.rule :
      r.status == "Enabled" && try(r.noncurrent_version_expiration[0].noncurrent_days, 0) == 30
      && try(r.abort_incomplete_multipart_upload[0].days_after_initiation, 0) == 7
    ])
    error_message = "noncurrent versions must expire after 30 days and stale multipart uploads be aborted"
  }
}

run "outputs_name_the_managed_secrets_and_a_tls_redis_url" {
  # apply on the mock: the computed attributes get values, so the outputs can be checked.
  command = apply

  override_resource {
    target = aws_db_instance.this
    values = {
      address            = "trainyard-test.abc.eu-west-1.rds.amazonaws.com"
      port               = 5432
      master_user_secret = [{ secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1", kms_key_id = "k", secret_status = "active" }]
    }
  }
  override_resource {
    target = aws_elasticache_replication_group.this
    values = {
      primary_endpoint_address = "master.trainyard-test.abc.euw1.cache.amazonaws.com"
      port                     = 6379
    }
  }

  assert {
    condition     = output.database_password_secret_arn == "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1"
    error_message = "database_password_secret_arn must be the secret RDS manages"
  }
  assert {
    condition     = output.database_endpoint == "trainyard-test.abc.eu-west-1.rds.amazonaws.com" && output.database_port == 5432 && output.database_name == "trainyard" && output.database_username == "trainyard"
    error_message = "the database outputs must describe the instance"
  }
  assert {
    condition     = nonsensitive(output.redis_url) == "rediss://:Tok3nFromSecretsManagerTok3nFromSecretsManagerTok3nFromSecretsM@master.trainyard-test.abc.euw1.cache.amazonaws.com:6379/0"
    error_message = "redis_url must be a rediss:// URL with the auth token"
  }
  assert {
    condition     = aws_s3_bucket_logging.this.target_bucket == aws_s3_bucket.logs.id && aws_s3_bucket_logging.this.bucket == aws_s3_bucket.this.id
    error_message = "the data bucket's access logs must go to the log bucket"
  }
  assert {
    condition     = output.bucket_kms_key_arn == aws_kms_key.bucket.arn && output.bucket_name == "trainyard-test-storage"
    error_message = "the bucket outputs must name the bucket and its key"
  }
}

run "backup_retention_of_zero_days_is_refused" {
  command = plan

  variables {
    backup_retention_days = 0
  }

  expect_failures = [var.backup_retention_days]
}

run "backup_retention_beyond_rds_maximum_is_refused" {
  command = plan

  variables {
    backup_retention_days = 36
  }

  expect_failures = [var.backup_retention_days]
}

run "invalid_bucket_name_is_refused" {
  command = plan

  variables {
    bucket_name = "Trainyard_Storage"
  }

  expect_failures = [var.bucket_name]
}

run "invalid_name_is_refused" {
  command = plan

  variables {
    name = "TY"
  }

  expect_failures = [var.name]
}
