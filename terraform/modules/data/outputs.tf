output "database_endpoint" {
  description = "Host name of the PostgreSQL database (without the port)."
  value       = aws_db_instance.this.address
}

output "database_port" {
  description = "Port of the PostgreSQL database."
  value       = aws_db_instance.this.port
}

output "database_name" {
  description = "Name of the platform's database."
  value       = aws_db_instance.this.db_name
}

output "database_username" {
  description = "Master user of the database; its password is in database_password_secret_arn."
  value       = aws_db_instance.this.username
}

output "database_password_secret_arn" {
  description = "ARN of the Secrets Manager secret RDS keeps the master password in (JSON: username, password); RDS rotates it."
  value       = one(aws_db_instance.this.master_user_secret[*].secret_arn)
}

output "database_security_group_id" {
  description = "Security group of the database (admits only client_security_group_ids)."
  value       = aws_security_group.database.id
}

output "redis_primary_endpoint" {
  description = "Host name of the Redis primary (TLS: connect with rediss://)."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "redis_port" {
  description = "Port of Redis."
  value       = aws_elasticache_replication_group.this.port
}

output "redis_auth_secret_arn" {
  description = "ARN of the Secrets Manager secret holding the Redis AUTH token and URL (JSON: auth_token, url)."
  value       = aws_secretsmanager_secret.redis_auth.arn
}

output "redis_url" {
  description = "TRAINYARD_REDIS_URL: rediss://:<auth token>@<primary>:<port>/0. Sensitive: for the step that writes the Kubernetes Secret, never for the chart's values."
  # From the secret, not the group: after a rotation (README) the secret holds the new token.
  value     = jsondecode(aws_secretsmanager_secret_version.redis_auth.secret_string).url
  sensitive = true
}

output "redis_security_group_id" {
  description = "Security group of Redis (admits only client_security_group_ids)."
  value       = aws_security_group.redis.id
}

output "bucket_name" {
  description = "Name of the platform's bucket (TRAINYARD_STORAGE_URL = s3://<bucket_name>)."
  value       = aws_s3_bucket.this.bucket
}

output "bucket_arn" {
  description = "ARN of the platform's bucket (the identity module scopes its roles below it)."
  value       = aws_s3_bucket.this.arn
}

output "bucket_kms_key_arn" {
  description = "ARN of the KMS key that encrypts the bucket's objects (the identity module grants its use through S3)."
  value       = aws_kms_key.bucket.arn
}
