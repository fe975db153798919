//! The standard gRPC health service and server reflection, called as generic tools call
//! them (grpc_health_probe, a Kubernetes gRPC probe, grpcurl): with no token, on a
//! coordinator that requires one for everything else, knowing nothing of allsweep's API.
//! Reflection lists the services and describes them well enough to call one.

#![allow(clippy::unwrap_used)]

mod common;

use prost::Message;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{health_check_response::ServingStatus, HealthCheckRequest};
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

use common::*;

async fn reflect(channel: tonic::transport::Channel, request: MessageRequest) -> MessageResponse {
    let mut client = ServerReflectionClient::new(channel);
    let outbound =
        futures::stream::iter(vec![ServerReflectionRequest { host: String::new(), message_request: Some(request) }]);
    let mut replies = client.server_reflection_info(outbound).await.unwrap().into_inner();
    replies.message().await.unwrap().unwrap().message_response.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_clients_check_health_and_discover_the_api_without_a_token() {
    let cluster = Cluster::sqlite("health", &["--token", "asw_health_test_token_0123456789"]);
    let channel =
        tonic::transport::Channel::from_shared(cluster.coordinator.address.clone()).unwrap().connect().await.unwrap();

    // Health: the server as a whole and each allsweep service, as a probe asks.
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "allsweep.v1.UserService", "allsweep.v1.WorkerService"] {
        let reply = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(reply.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health.check(HealthCheckRequest { service: "no.such.Service".into() }).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    // Reflection: list the services.
    let MessageResponse::ListServicesResponse(list) =
        reflect(channel.clone(), MessageRequest::ListServices(String::new())).await
    else {
        panic!("a service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in
        ["allsweep.v1.UserService", "allsweep.v1.WorkerService", "allsweep.v1.AdminService", "grpc.health.v1.Health"]
    {
        assert!(names.iter().any(|n| n == expected), "{expected} listed: {names:?}");
    }

    // ... and describe one: its methods and their message types, enough to call it.
    let MessageResponse::FileDescriptorResponse(files) =
        reflect(channel.clone(), MessageRequest::FileContainingSymbol("allsweep.v1.UserService".into())).await
    else {
        panic!("file descriptors")
    };
    let file = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .find(|f| f.service.iter().any(|s| s.name() == "UserService"))
        .expect("the file that defines UserService");
    let user = file.service.iter().find(|s| s.name() == "UserService").unwrap();
    let submit = user.method.iter().find(|m| m.name() == "Submit").expect("Submit");
    assert_eq!(submit.input_type(), ".allsweep.v1.SubmitRequest");
    let request = file.message_type.iter().find(|m| m.name() == "SubmitRequest").unwrap();
    assert!(request.field.iter().any(|f| f.name() == "spec_toml"), "SubmitRequest's fields are described");

    // The rest of the API still needs the token.
    let mut users = allsweep_coordinator::client::user(&cluster.coordinator.address, None).await.unwrap();
    let refused = users.list_sweeps(allsweep_proto::v1::ListSweepsRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}
