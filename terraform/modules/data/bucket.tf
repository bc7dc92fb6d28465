# The platform's bucket (TRAINYARD_STORAGE_URL = s3://<bucket_name>): uploaded datasets under
# datasets/, the attempts' checkpoints and artifacts under jobs/<job>/attempt-<n>/. Private,
# versioned, encrypted with its own KMS key, TLS only, and its access logged to a second bucket.

locals {
  # Built from the name rather than read from the resource, so the policies are known (and
  # assertable) at plan time.
  bucket_arn      = "arn:${local.partition}:s3:::${var.bucket_name}"
  log_bucket_name = "${var.bucket_name}-logs"
  log_bucket_arn  = "arn:${local.partition}:s3:::${local.log_bucket_name}"

  # Deny every request that is not HTTPS (TLS 1.2 or later) on a bucket and its objects.
  tls_only_statements = [for arn in [local.bucket_arn, local.log_bucket_arn] : [
    {
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [arn, "${arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    },
    {
      Sid       = "DenyTlsOlderThan12"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [arn, "${arn}/*"]
      Condition = { NumericLessThan = { "s3:TlsVersion" = "1.2" } }
    },
  ]]

  bucket_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = local.tls_only_statements[0]
  })

  log_bucket_policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(local.tls_only_statements[1], [{
      # Server access logging delivers as the logging service, only for our bucket.
      Sid       = "S3ServerAccessLogsFromTheDataBucket"
      Effect    = "Allow"
      Principal = { Service = "logging.s3.amazonaws.com" }
      Action    = "s3:PutObject"
      Resource  = "${local.log_bucket_arn}/*"
      Condition = {
        ArnLike      = { "aws:SourceArn" = local.bucket_arn }
        StringEquals = { "aws:SourceAccount" = local.account_id }
      }
    }])
  })
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery choice with its own cost (a second region, a second key); versioning plus noncurrent retention covers mistaken writes and deletes here.
  #checkov:skip=CKV2_AWS_62:Nothing consumes bucket events: the platform records every write it makes in PostgreSQL.
  bucket = var.bucket_name
  tags   = merge(local.tags, { Name = var.bucket_name })
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = aws_s3_bucket.this.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.bucket.arn
    }
    # One data key per bucket rather than per object: far fewer KMS calls (and less cost) for
    # datasets of many small images.
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = local.bucket_policy

  # A policy before the public access block could be refused as public by a stricter account.
  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  # Attempts' outputs (checkpoints, weights, results) expire only when asked: the prefix holds
  # each job's trained weights too, which users download long after the run. Unasked, the rule
  # is there but disabled (its days then mean nothing).
  rule {
    id     = "expire-checkpoints"
    status = var.checkpoint_expiration_days == null ? "Disabled" : "Enabled"
    filter {
      prefix = var.checkpoint_prefix
    }
    expiration {
      days = coalesce(var.checkpoint_expiration_days, 3650)
    }
  }

  rule {
    id     = "noncurrent-versions-and-incomplete-uploads"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
    # Multipart uploads a crashed trainer or API replica left behind.
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
    expiration {
      expired_object_delete_marker = true
    }
  }

  # Lifecycle rules act on versions: versioning must be on first.
  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_logging" "this" {
  bucket        = aws_s3_bucket.this.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3-access/"
}

# --- Access logs ------------------------------------------------------------------------------

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_18:This is the access-log target; logging it into itself would log its own log deliveries without end.
  #checkov:skip=CKV_AWS_144:Access logs are an audit trail of this region's bucket; replicating them is the same disaster-recovery choice as for the data bucket.
  #checkov:skip=CKV2_AWS_62:Nothing consumes log delivery events.
  #checkov:skip=CKV_AWS_145:S3 server access logging cannot deliver to a bucket whose default encryption is SSE-KMS; SSE-S3 (AES256) is the strongest it supports.
  bucket = local.log_bucket_name
  tags   = merge(local.tags, { Name = local.log_bucket_name })
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_policy" "logs" {
  bucket     = aws_s3_bucket.logs.id
  policy     = local.log_bucket_policy
  depends_on = [aws_s3_bucket_public_access_block.logs]
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "expire-access-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = var.access_log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.logs]
}
