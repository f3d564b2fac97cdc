//! UnregisterBroker (Kafka's API 64, as `kafka-cluster.sh unregister`
//! sends it): forgets a broker that left for good, after a scale-down.
//! Forwarded to the active controller, which refuses a broker still
//! running or still holding replicas.

use weir_client::acl::Operation;

use crate::authorizer::Access;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{UnregisterBrokerRequest, UnregisterBrokerResponse};
use weir_quorum::rpc::ControllerError;

use super::str_bytes;
use super::topics::refusal_of_controller;
use crate::broker::BrokerState;

pub async fn unregister_broker(
    state: &Arc<BrokerState>,
    access: &Access<'_>,
    req: UnregisterBrokerRequest,
) -> UnregisterBrokerResponse {
    if !access.cluster(Operation::Alter) {
        return UnregisterBrokerResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes(
                "Alter on the cluster is needed to unregister a broker",
            )));
    }
    let result = state.cluster.unregister_broker(req.broker_id.0).await;
    response_of(result)
}

fn response_of(result: Result<(), ControllerError>) -> UnregisterBrokerResponse {
    let mut response = UnregisterBrokerResponse::default();
    if let Err(e) = result {
        let (code, message) = match &e {
            ControllerError::UnknownBroker(_) => {
                (ResponseError::BrokerIdNotRegistered, e.to_string())
            }
            other => refusal_of_controller(other),
        };
        response.error_code = code.code();
        response.error_message = Some(str_bytes(message));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_broker_and_an_unknown_one_is_not_registered() {
        let unknown = response_of(Err(ControllerError::UnknownBroker(7)));
        assert_eq!(
            unknown.error_code,
            ResponseError::BrokerIdNotRegistered.code()
        );
        assert!(unknown.error_message.unwrap().contains('7'));
        let running = response_of(Err(ControllerError::InvalidRequest(
            "broker 7 is running".into(),
        )));
        assert_eq!(running.error_code, ResponseError::InvalidRequest.code());
        assert_eq!(response_of(Ok(())).error_code, 0);
    }
}
