//! Without a server at `ALLSWEEP_TEST_POSTGRES`, `ThrowawayPostgres::create` panics and names
//! the variable (tests never skip). Alone in its binary: it sets the variable.

use allsweep_testkit::ThrowawayPostgres;

#[tokio::test]
#[should_panic(expected = "set ALLSWEEP_TEST_POSTGRES")]
async fn without_a_server_create_panics_naming_the_variable() {
    std::env::set_var(allsweep_testkit::postgres::URL_VARIABLE, "postgres://postgres@127.0.0.1:1/test");
    ThrowawayPostgres::create().await;
}
