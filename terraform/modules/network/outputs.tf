output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "IPv4 CIDR of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "private_subnet_ids" {
  description = "Private subnet IDs, one per availability zone, in AZ order (for the EKS cluster, node groups, RDS and ElastiCache)."
  value       = aws_subnet.private[*].id
}

output "public_subnet_ids" {
  description = "Public subnet IDs, one per availability zone, in AZ order (internet-facing load balancers and NAT gateways)."
  value       = aws_subnet.public[*].id
}

output "private_route_table_ids" {
  description = "Route table IDs of the private subnets, one per availability zone."
  value       = aws_route_table.private[*].id
}

output "s3_endpoint_id" {
  description = "ID of the S3 gateway VPC endpoint (use in bucket policies with aws:SourceVpce)."
  value       = aws_vpc_endpoint.s3.id
}

output "availability_zones" {
  description = "Availability zones the subnets are spread over, in order."
  value       = local.azs
}

output "nat_gateway_ids" {
  description = "NAT gateway IDs (one, or one per availability zone)."
  value       = aws_nat_gateway.this[*].id
}
