output "role_arns" {
  description = "IRSA role ARNs: { api, worker, trainer }."
  value       = { for role, r in aws_iam_role.this : role => r.arn }
}

output "service_account_annotations" {
  description = "Annotations for the chart's service accounts: { api = { \"eks.amazonaws.com/role-arn\" = ... }, worker = ..., trainer = ... } (backend.serviceAccount.annotations, worker.serviceAccount.annotations, training.serviceAccount.annotations)."
  value       = { for role, r in aws_iam_role.this : role => { "eks.amazonaws.com/role-arn" = r.arn } }
}

output "storage_access" {
  description = "The key prefixes each role may read and write ({ api = { read = [...], write = [...] }, ... }), as granted."
  value       = local.access
}
