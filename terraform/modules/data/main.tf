# The platform's state on AWS: PostgreSQL (RDS), Redis (ElastiCache) and the object-storage
# bucket. Each lives in its own file (database.tf, redis.tf, bucket.tf); this one holds what
# they share: the account facts and the two customer-managed KMS keys.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  tags = merge(var.tags, { "trainyard.dev/module" = "data" })

  # Statement that keeps the key manageable through IAM: without it only the key policy could
  # ever grant access, and a mistake there locks the account out of its own data.
  account_root_statement = {
    Sid       = "AccountAdministersThroughIam"
    Effect    = "Allow"
    Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
    Action    = "kms:*"
    Resource  = "*"
  }
}

# One key for the database side (RDS storage, Performance Insights, the master-password secret,
# ElastiCache at rest, the Redis auth-token secret, their log groups), one for the bucket: the
# bucket key is the one the identity module grants to the platform's pods, so nothing that can
# read objects can also decrypt the database's snapshots.
resource "aws_kms_key" "data" {
  description             = "${var.name}: PostgreSQL, Redis, their secrets and logs"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = 30

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      local.account_root_statement,
      {
        # CloudWatch Logs encrypts the database's and Redis's log groups with this key; it
        # calls KMS itself, so only the key policy can allow it (scoped to this account's groups).
        Sid       = "CloudWatchLogsEncryptsTheLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"
          }
        }
      },
    ]
  })

  tags = merge(local.tags, { Name = "${var.name}-data" })
}

resource "aws_kms_alias" "data" {
  name          = "alias/${var.name}-data"
  target_key_id = aws_kms_key.data.key_id
}

resource "aws_kms_key" "bucket" {
  description             = "${var.name}: objects of s3://${var.bucket_name}"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = 30

  # Only the account statement: the API, worker and trainer roles (identity module) get
  # kms:Decrypt / kms:GenerateDataKey through their IAM policies, restricted to S3's use.
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [local.account_root_statement]
  })

  tags = merge(local.tags, { Name = "${var.name}-bucket" })
}

resource "aws_kms_alias" "bucket" {
  name          = "alias/${var.name}-bucket"
  target_key_id = aws_kms_key.bucket.key_id
}
